"""Serves the template's REST API like API Gateway: each request becomes the proxy event AWS
would send to the function the route names, and its response becomes the HTTP response."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from devstack import console
from devstack.authorizer import CognitoAuthorizer
from devstack.runner import FunctionRunner, Invocation
from tools.openapi import OUTPUT as OPENAPI_DOCUMENT

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's limit
# Local-stack extras, not routes of the template: the checked-in OpenAPI document and Swagger UI on it.
DOCS_PAGES = ("/openapi.json", "/docs")


@dataclass(frozen=True)
class Route:
    method: str
    resource: str  # e.g. /users/{user_id}/orders
    pattern: re.Pattern[str]
    runner: FunctionRunner
    authorizer: CognitoAuthorizer | None  # None: a public route


def route(method: str, resource: str, runner: FunctionRunner, authorizer: CognitoAuthorizer | None = None) -> Route:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(resource))
    return Route(method.upper(), resource, re.compile(f"^{pattern}$"), runner, authorizer)


def proxy_event(
    route_: Route,
    method: str,
    raw_path: str,
    headers: dict[str, str],
    body: bytes,
    stage: str,
    claims: dict[str, str] | None = None,
) -> dict[str, Any]:
    parts = urlsplit(raw_path)
    match = route_.pattern.match(parts.path)
    assert match is not None
    query = parse_qs(parts.query, keep_blank_values=True)
    text = body.decode("utf-8", errors="replace") if body else None
    now = datetime.now(UTC)
    authorizer = {"authorizer": {"claims": claims}} if claims is not None else {}
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
            # The path the client called, as the function builds a Location from it: the local API serves
            # the stage at its root, like a custom domain mapped to it without a base path (API
            # Gateway's own URL would add /<stage>).
            "path": parts.path,
            "resourcePath": route_.resource,
            "httpMethod": method,
            "protocol": "HTTP/1.1",
            **authorizer,
        },
        "body": text,
        "isBase64Encoded": False,
    }


class ApiServer(ThreadingHTTPServer):
    """A thread per connection. http.server listens with a backlog of 5: dozens of clients
    connecting at once would see their connections dropped or reset, never API Gateway's."""

    request_queue_size = 1024


def error_body(status: int, message: str) -> bytes:
    """The contract's error body; the code is the status's name, e.g. method_not_allowed."""
    code = "payload_too_large" if status == 413 else HTTPStatus(status).phrase.lower().replace(" ", "_")
    return json.dumps({"code": code, "message": message}).encode()


def docs_page(path: str) -> tuple[str, bytes]:
    """The content type and body of one of DOCS_PAGES; Swagger UI's script and style are inlined
    from Powertools' own copies, so the page works offline."""
    document = OPENAPI_DOCUMENT.read_text()
    if path == "/openapi.json":
        return "application/json", document.encode()
    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    assets = Path(swagger_ui.__file__).parent
    js, css = (assets / "swagger-ui-bundle.min.js").read_text(), (assets / "swagger-ui.min.css").read_text()
    return "text/html; charset=utf-8", swagger_ui.generate_swagger_html(document, js, css, "", None).encode()


def make_server(host: str, port: int, routes: list[Route], stage: str) -> ApiServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        default_request_version = "HTTP/1.1"  # answer even a malformed request line with a status line

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):  # every method, unknown ones too, gets a route's answer or 404/405
                return self._handle
            raise AttributeError(name)

        def _handle(self) -> None:
            started = time.perf_counter()
            path = urlsplit(self.path).path
            if path in DOCS_PAGES and self.command in ("GET", "HEAD"):
                content_type, page = docs_page(path)
                self._reply(200, {"Content-Type": content_type}, page)
                return
            matching = [r for r in routes if r.pattern.match(path)]
            chosen = next((r for r in matching if r.method == self.command), None)
            if chosen is None:
                if matching:
                    allowed = ", ".join(sorted({r.method for r in matching}))
                    self._error(405, f"{self.command} is not allowed here; use {allowed}.", {"Allow": allowed})
                else:
                    self._error(404, "No such route.")
                return
            body = self._read_body()
            if body is None:
                return
            claims = None
            if chosen.authorizer is not None:
                claims = chosen.authorizer.claims(self.headers.get("Authorization"))
                if claims is None:
                    self._error(401, "Sign in and send your ID token as Authorization: Bearer <token>.")
                    return
            headers = {name: value for name, value in self.headers.items()}
            event = proxy_event(chosen, self.command, self.path, headers, body, stage, claims)
            invocation = chosen.runner.invoke(event)
            status, out_headers, raw = integration_response(invocation)
            self._reply(status, out_headers, raw)
            elapsed = (time.perf_counter() - started) * 1000
            correlation = out_headers.get("X-Correlation-Id", "-")
            failure = "" if invocation.ok else f" ({invocation.error})"
            console.line(
                "API",
                f"{self.command} {self.path} -> {status}{failure} {chosen.runner.served_by(invocation)}"
                f" {elapsed:.0f}ms corr={correlation}",
            )

        def _read_body(self) -> bytes | None:
            """The request body, or None once an error has been answered."""
            declared = self.headers.get("Content-Length") or "0"
            if not declared.isdigit():
                self.send_error(400, "Content-Length is not a number.")
                return None
            if int(declared) > MAX_PAYLOAD_BYTES:
                self.send_error(413, "The request body is over 10 MB.")
                return None
            return self.rfile.read(int(declared)) if int(declared) else b""

        def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
            self._reply(status, {"Content-Type": "application/json", **(headers or {})}, error_body(status, message))
            request = f"{self.command} {self.path}" if self.command else repr(self.requestline[:80])
            console.line("API", f"{request} -> {status} ({message})")

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """Answers a request that cannot be read (a malformed request line, headers too long...)
            in JSON, not http.server's HTML, and closes the connection: what follows is not a request."""
            self.close_connection = True
            self._error(code, message or HTTPStatus(code).phrase, {"Connection": "close"})

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one console line per request is written by _handle and _error

    return ApiServer((host, port), Handler)


def integration_response(invocation: Invocation) -> tuple[int, dict[str, str], bytes]:
    """The function's proxy response as HTTP, or what API Gateway answers when there is none."""
    if invocation.timed_out:
        return 504, {"Content-Type": "application/json"}, error_body(504, "The function did not answer in time.")
    if invocation.ok and isinstance(invocation.result, dict):
        try:
            return proxy_response(invocation.result)
        except (TypeError, ValueError, binascii.Error):
            pass  # a malformed proxy response: a 502 from API Gateway as well
    return 502, {"Content-Type": "application/json"}, error_body(502, "The function failed; see its log.")


def proxy_response(response: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    status = int(response.get("statusCode", 200))
    headers = {name: str(values[-1]) for name, values in (response.get("multiValueHeaders") or {}).items()}
    headers.update({name: str(value) for name, value in (response.get("headers") or {}).items()})
    payload = response.get("body") or ""
    raw = base64.b64decode(payload) if response.get("isBase64Encoded") else str(payload).encode()
    return status, headers, raw
