"""Serves the template's REST API like API Gateway: each request becomes the proxy event AWS
would send to the function the route names, and its response becomes the HTTP response."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from devstack import console
from devstack.runner import FunctionRunner


@dataclass(frozen=True)
class Route:
    method: str
    resource: str  # e.g. /users/{user_id}/orders
    pattern: re.Pattern[str]
    runner: FunctionRunner


def route(method: str, resource: str, runner: FunctionRunner) -> Route:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(resource))
    return Route(method.upper(), resource, re.compile(f"^{pattern}$"), runner)


def proxy_event(
    route_: Route, method: str, raw_path: str, headers: dict[str, str], body: bytes, stage: str
) -> dict[str, Any]:
    parts = urlsplit(raw_path)
    match = route_.pattern.match(parts.path)
    assert match is not None
    query = parse_qs(parts.query, keep_blank_values=True)
    text = body.decode("utf-8", errors="replace") if body else None
    now = datetime.now(UTC)
    return {
        "resource": route_.resource,
        "path": parts.path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {name: [value] for name, value in headers.items()} or None,
        "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {name: unquote(value) for name, value in match.groupdict().items()} or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "resourceId": "local",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": headers.get("User-Agent", "")},
            "path": f"/{stage}{parts.path}",
            "resourcePath": route_.resource,
            "httpMethod": method,
            "protocol": "HTTP/1.1",
        },
        "body": text,
        "isBase64Encoded": False,
    }


def make_server(host: str, port: int, routes: list[Route], stage: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            started = time.perf_counter()
            path = urlsplit(self.path).path
            matching = [r for r in routes if r.pattern.match(path)]
            chosen = next((r for r in matching if r.method == self.command), None)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if chosen is None:
                status = 405 if matching else 404
                code = "method_not_allowed" if matching else "not_found"
                self._reply(
                    status,
                    {"Content-Type": "application/json"},
                    json.dumps({"code": code, "message": "No such route."}).encode(),
                )
                console.line("API", f"{self.command} {self.path} -> {status}")
                return
            headers = {name: value for name, value in self.headers.items()}
            invocation = chosen.runner.invoke(proxy_event(chosen, self.command, self.path, headers, body, stage))
            if invocation.ok and isinstance(invocation.result, dict):
                response = invocation.result
                status = int(response.get("statusCode", 200))
                out_headers = {name: values[-1] for name, values in (response.get("multiValueHeaders") or {}).items()}
                out_headers.update(response.get("headers") or {})
                payload = response.get("body") or ""
                raw = base64.b64decode(payload) if response.get("isBase64Encoded") else str(payload).encode()
            else:  # what API Gateway answers when the integration fails
                status, out_headers = 502, {"Content-Type": "application/json"}
                raw = json.dumps({"message": "Internal server error"}).encode()
            self._reply(status, out_headers, raw)
            elapsed = (time.perf_counter() - started) * 1000
            correlation = out_headers.get("X-Correlation-Id", "-")
            console.line(
                "API",
                f"{self.command} {self.path} -> {status} {chosen.runner.spec.name} {elapsed:.0f}ms corr={correlation}",
            )

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815 (http.server names)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request is written by _handle

    return ThreadingHTTPServer((host, port), Handler)
