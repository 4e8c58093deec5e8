"""Stands in for Stripe: localstripe 1.15 (a stateful fake Stripe server) in a process of its own.

Run as ``python -m devstack.stripe_server PORT``, it serves 127.0.0.1 with two adjustments:
it keeps its state in memory (it would pickle its whole store to /tmp/localstripe.pickle after
every write: one file for every instance on the machine, slower with every object), and it
takes PaymentIntents' ``allowed_payment_method_types`` (Stripe API 2026-09-30, what stripe 16
sends) as the ``payment_method_types`` it knows.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Any key that starts with sk_ is accepted.
API_KEY = "sk_test_localstripe"


@dataclass
class StripeServer:
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_path: Path, timeout: float = 30.0) -> str:
        with log_path.open("ab") as log:
            command = [sys.executable, "-m", "devstack.stripe_server", str(self.port)]
            self.process = subprocess.Popen(command, stdout=log, stderr=log, cwd=Path(__file__).parent.parent)
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self.url
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"localstripe did not start; see {log_path}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def serve(port: int) -> None:
    from aiohttp import web
    from localstripe import resources, server

    resources.Store.dump_to_disk = lambda self: None
    create_intent = resources.PaymentIntent._api_create.__func__

    def create_with_allowed_types(cls: Any, allowed_payment_method_types: Any = None, **data: Any) -> Any:
        if allowed_payment_method_types is not None:
            data["payment_method_types"] = allowed_payment_method_types
        return create_intent(cls, **data)

    resources.PaymentIntent._api_create = classmethod(create_with_allowed_types)
    web.run_app(server.app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
