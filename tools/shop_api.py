"""The shop as its clients reach it: its HTTP API as one caller, a Cognito sign-in, and waiting for
what the saga does asynchronously. Shared by `make smoke` (tools/smoke.py, against any stack), the
local demo, the end-to-end tests and the benchmark; it needs neither the local stack nor the repository's
services, only the standard library and boto3."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

STAFF_GROUP = "staff"  # the contract's group of shop staff (template.yaml's StaffGroup)

HTTP_TIMEOUT_SECONDS = 15.0


class Api:
    """The shop's HTTP API, as one caller: ``token`` is the caller's ID token, None for nobody."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = HTTP_TIMEOUT_SECONDS) -> None:
        self.base_url = base_url
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        signed_in = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **signed_in, **(headers or {})},
        )
        try:
            with urlopen(request, timeout=self.timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


def id_token(cognito: Any, client_id: str, username: str, password: str) -> str:
    """The ID token of a user of the pool, signed in as the contract's clients do (USER_PASSWORD_AUTH)."""
    signed_in = cognito.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )
    return str(signed_in["AuthenticationResult"]["IdToken"])


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """``probe``'s first truthy answer; TimeoutError naming ``what`` if none comes within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
