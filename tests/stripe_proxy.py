"""A small HTTP proxy in front of localstripe that loses answers after localstripe acted, refuses
requests, or lets a test act at the moment a request arrives: how the tests make the payment
provider misbehave (tests/integration/test_payments_provider_faults.py, test_payments_outage.py,
tests/e2e/test_provider_outage.py)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

CONFIRM = ("POST", r"^/v1/payment_intents/\w+/confirm$")
CREATE_INTENT = ("POST", r"^/v1/payment_intents$")
RETRIEVE_INTENT = ("GET", r"^/v1/payment_intents/\w+$")
CREATE_REFUND = ("POST", r"^/v1/refunds$")
LIST_REFUNDS = ("GET", r"^/v1/refunds\?")
# What a proxy must not pass on: they concern one connection, not the request.
HOP_BY_HOP = {"host", "connection", "keep-alive", "content-length", "transfer-encoding"}


@dataclass
class Plan:
    method: str
    path: str  # a regular expression
    times: int
    fault: str  # "lose": forward, then close without answering; "refuse": close without forwarding; "" none
    before: Callable[[], None] | None = None


class StripeProxy(ThreadingHTTPServer):
    """Forwards every request to localstripe and its answer back, except the next requests a
    test planned otherwise. Records what it received, in order."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = urlsplit(upstream)
        self.received: list[tuple[str, str]] = []
        self._plans: list[Plan] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def lose_answers(self, request: tuple[str, str], times: int, before: Callable[[], None] | None = None) -> None:
        """The next ``times`` such requests reach localstripe (``before`` run as each arrives), and
        their answers are lost."""
        self._plans.append(Plan(*request, times, "lose", before))

    def refuse(self, request: tuple[str, str], times: int) -> None:
        """The next ``times`` such requests never reach localstripe."""
        self._plans.append(Plan(*request, times, "refuse"))

    def before(self, request: tuple[str, str], action: Callable[[], None]) -> None:
        """Run ``action`` when the next such request arrives, then forward it."""
        self._plans.append(Plan(*request, 1, "", action))

    def go_down(self) -> None:
        """Refuse every request from now on (the provider is down) until ``come_back``."""
        for method in ("GET", "POST", "DELETE"):
            self.refuse((method, r".*"), times=1_000_000)

    def come_back(self) -> None:
        with self._lock:
            self._plans.clear()

    def count(self, request: tuple[str, str]) -> int:
        method, path = request
        return sum(1 for seen in self.received if seen[0] == method and re.search(path, seen[1]))

    def take(self, method: str, path: str) -> Plan | None:
        with self._lock:
            self.received.append((method, path))
            for plan in self._plans:
                if plan.times and plan.method == method and re.search(plan.path, path):
                    plan.times -= 1
                    return plan
        return None


class _Forward(BaseHTTPRequestHandler):
    server: StripeProxy
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def do_DELETE(self) -> None:
        self._forward()

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        plan = self.server.take(self.command, self.path)
        if plan and plan.fault == "refuse":
            self.close_connection = True
            return
        if plan and plan.before:
            plan.before()
        upstream = HTTPConnection(self.server.upstream.hostname or "127.0.0.1", self.server.upstream.port, timeout=30)
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        upstream.request(self.command, self.path, body=body or None, headers=headers)
        response = upstream.getresponse()
        payload = response.read()
        upstream.close()
        if plan and plan.fault == "lose":
            self.close_connection = True  # localstripe acted; the caller never hears of it
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.getheader("Content-Type") or "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass
