"""The local API as API Gateway behaves: many clients connecting at once are all served, every
answer it gives itself has the contract's JSON error body, a route behind the Cognito
authorizer needs a valid ID token whose claims the function gets, a failing or timed-out
function becomes a JSON 502 or 504, and concurrent requests run on several containers."""

from __future__ import annotations

import gzip
import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.client import HTTPConnection, HTTPResponse
from pathlib import Path
from typing import Any

import moto.cognitoidp
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from devstack.api import make_server, route
from devstack.runner import FunctionRunner
from tests.e2e.probe import probe_spec
from tests.e2e.running_stack import RunningStack, eventually
from tools.shop_api import Api

pytestmark = pytest.mark.e2e


def host_and_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def request(
    url: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[HTTPResponse, bytes]:
    connection = HTTPConnection(*host_and_port(url), timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def assert_json_error(response: HTTPResponse, body: bytes, status: int, code: str) -> None:
    assert response.status == status
    assert response.getheader("Content-Type") == "application/json"
    error = json.loads(body)
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]


def listen_backlog(url: str) -> int:
    """How many connections the kernel queues for the server before it drops new ones (Linux)."""
    port = host_and_port(url)[1]
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(listening.split()[2])  # State Recv-Q Send-Q...: Send-Q of a listening socket is its backlog


def test_64_clients_connecting_at_once_are_all_served(stack: RunningStack) -> None:
    staff = stack.sign_in(staff=True)
    assert staff.call("PUT", "/inventory/E2E-LOAD", {"name": "Load", "unit_price_cents": 1, "available": 1})[0] == 200
    clients, rounds = 64, 3
    barrier = threading.Barrier(clients)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def client() -> None:
        for _ in range(rounds):
            barrier.wait()
            # on loopback, a connection not made within 2 s had its SYN dropped: a full backlog
            connection = HTTPConnection(*host_and_port(stack.description["api_url"]), timeout=2)
            try:
                connection.connect()
                connection.sock.settimeout(30)  # the answer may wait for a free container
                connection.request("GET", "/inventory/E2E-LOAD")
                statuses.append(connection.getresponse().status)
            except OSError as error:  # ConnectionResetError, RemoteDisconnected, TimeoutError...
                errors.append(error)
            finally:
                connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert statuses == [200] * clients * rounds
    assert listen_backlog(stack.description["api_url"]) >= clients


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "PROPFIND", "DELETE"])
def test_a_method_the_route_does_not_have_is_a_json_405(stack: RunningStack, method: str) -> None:
    response, body = request(stack.description["api_url"], method, "/users")

    assert_json_error(response, body, 405, "method_not_allowed")
    assert response.getheader("Allow") == "POST"


@pytest.mark.parametrize("method", ["GET", "TRACE", "OPTIONS", "PROPFIND"])
def test_a_path_without_a_route_is_a_json_404(stack: RunningStack, method: str) -> None:
    response, body = request(stack.description["api_url"], method, "/nowhere")

    assert_json_error(response, body, 404, "not_found")


def test_head_gets_json_headers_and_no_body(stack: RunningStack) -> None:
    response, body = request(stack.description["api_url"], "HEAD", "/users")

    assert response.status == 405
    assert response.getheader("Content-Type") == "application/json"
    assert body == b""


def raw_exchange(url: str, data: bytes) -> tuple[str, dict[str, str], bytes]:
    """Sends bytes that no HTTP client library would, and splits the answer."""
    with socket.create_connection(host_and_port(url), timeout=10) as connection:
        connection.sendall(data)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return status_line, headers, body


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /users HTTP/1.1 extra words\r\n\r\n",
        b"GET /users HTTP/9.9\r\n\r\n",
        b"POST /users HTTP/1.1\r\nContent-Length: many\r\nConnection: close\r\n\r\n",
    ],
)
def test_a_malformed_request_is_a_json_400(stack: RunningStack, data: bytes) -> None:
    status_line, headers, body = raw_exchange(stack.description["api_url"], data)

    assert re.fullmatch(r"HTTP/1\.[01] (400|505) .*", status_line)
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["code"] in ("bad_request", "http_version_not_supported")
    assert error["message"]


def test_concurrent_requests_run_on_several_containers_of_a_function(stack: RunningStack) -> None:
    assert stack.description["concurrency"] >= 2
    staff = stack.sign_in(staff=True)
    assert staff.call("PUT", "/inventory/E2E-PAR", {"name": "Par", "unit_price_cents": 1, "available": 1})[0] == 200
    correlation = "parallel-check"
    barrier = threading.Barrier(16)

    def client() -> None:
        barrier.wait()
        stack.call("GET", "/inventory/E2E-PAR", headers={"X-Correlation-Id": correlation})

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    def log_lines() -> list[str] | None:  # each is written just after its answer is sent
        found = re.findall(rf"InventoryApiFunction\[(\d+)\].*corr={correlation}", stack.log_path.read_text())
        return found if len(found) == 16 else None

    served_by = eventually("a log line per request", log_lines)
    assert 1 < len(set(served_by)) <= stack.description["functions"]["InventoryApiFunction"]["concurrency"]


def id_token(**changes: Any) -> str:
    """An ID token signed with the local pool's key (moto's), with ``changes`` to its claims."""
    claims = {
        "sub": "c0ffee00-0000-4000-8000-000000000001",
        "email": "minted@example.com",
        "token_use": "id",
        "iat": int(time.time()),
        "exp": int(time.time()) + 3600,
        **changes,
    }
    with gzip.open(Path(moto.cognitoidp.__file__).parent / "resources" / "jwks-private.json.gz") as private:
        key = RSAKey.import_key(json.load(private))
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def valid_claims(stack: RunningStack) -> dict[str, Any]:
    pool_id = stack.description["user_pool_id"]
    return {
        "iss": f"https://cognito-idp.{stack.description['region']}.amazonaws.com/{pool_id}",
        "aud": stack.description["user_pool_client_id"],
    }


Authorization = Callable[[dict[str, Any]], str | None]  # the header, given the claims a valid token has
INVALID_AUTHORIZATIONS: dict[str, Authorization] = {
    "none": lambda valid: None,
    "empty": lambda valid: "",
    "no token": lambda valid: "Bearer",
    "not a token": lambda valid: "Bearer not-a-token",
    "basic": lambda valid: "Basic dXNlcjpwYXNz",
    "expired": lambda valid: "Bearer " + id_token(**valid, exp=int(time.time()) - 60),
    "another audience": lambda valid: "Bearer " + id_token(**{**valid, "aud": "another-client"}),
    "another issuer": lambda valid: "Bearer " + id_token(**{**valid, "iss": "https://cognito-idp.x/other"}),
    "an access token": lambda valid: "Bearer " + id_token(**valid, token_use="access"),
    "a forged signature": lambda valid: "Bearer " + id_token(**valid)[:-8] + "AAAAAAAA",
}


@pytest.mark.parametrize("case", INVALID_AUTHORIZATIONS)
def test_a_route_behind_the_authorizer_answers_401_without_a_valid_id_token(stack: RunningStack, case: str) -> None:
    authorization = INVALID_AUTHORIZATIONS[case](valid_claims(stack))
    headers = {} if authorization is None else {"Authorization": authorization}

    response, body = request(
        stack.description["api_url"], "GET", "/users/c0ffee00-0000-4000-8000-000000000001", None, headers
    )

    assert_json_error(response, body, 401, "unauthorized")


def test_the_function_gets_the_claims_of_a_valid_id_token(stack: RunningStack) -> None:
    # email_verified a JSON boolean, as Cognito writes it: the function gets "true", as API Gateway passes it
    minted = id_token(
        **valid_claims(stack), email="Minted@Example.com", email_verified=True, **{"cognito:groups": ["staff"]}
    )

    response, body = request(
        stack.description["api_url"],
        "POST",
        "/users",
        json.dumps({"name": "Minted"}).encode(),
        {"Authorization": minted},  # the bare token, as API Gateway also takes it
    )

    assert response.status == 201
    assert json.loads(body)["user_id"] == "c0ffee00-0000-4000-8000-000000000001"
    assert json.loads(body)["email"] == "minted@example.com"


def test_a_public_route_needs_no_token(stack: RunningStack) -> None:
    assert stack.call("GET", "/inventory/E2E-NOWHERE")[0] == 404


@pytest.fixture(scope="module")
def probe_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The local API in front of the probe function, whose timeout is 1 s."""
    environment = {"PATH": "/usr/bin:/bin", "AWS_LAMBDA_FUNCTION_NAME": "Probe"}
    runner = FunctionRunner(probe_spec(timeout=1), environment, tmp_path_factory.mktemp("probe") / "Probe.log", 2)
    runner.warm()
    routes = [route("GET", path, runner) for path in ("/fail", "/crash", "/malformed", "/sleep/{seconds}")]
    server = make_server("127.0.0.1", 0, routes, "local")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    runner.stop()


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/fail", 502, "bad_gateway"),
        ("/crash", 502, "bad_gateway"),
        ("/malformed", 502, "bad_gateway"),
        ("/sleep/5", 504, "gateway_timeout"),
    ],
)
def test_a_function_that_fails_or_times_out_is_a_json_502_or_504(
    probe_api: str, path: str, status: int, code: str
) -> None:
    response, body = request(probe_api, "GET", path)

    assert_json_error(response, body, status, code)


def test_the_probe_answers_when_it_does_not_fail(probe_api: str) -> None:
    response, body = request(probe_api, "GET", "/sleep/0")

    assert (response.status, json.loads(body)) == (200, {"ok": True})


def test_the_token_command_signs_a_user_in_for_curl(stack: RunningStack) -> None:
    customer = stack.devstack("token", "curl-customer@example.com").strip()
    staff = stack.devstack("token", "curl-staff@example.com", "--staff").strip()
    product = {"name": "Curl", "unit_price_cents": 100, "available": 1}

    as_customer = {"Authorization": f"Bearer {customer}"}
    assert stack.call("POST", "/users", {"name": "Curl"}, as_customer)[0] == 201
    assert stack.call("PUT", "/inventory/CURL-1", product, as_customer)[0] == 403
    assert stack.call("PUT", "/inventory/CURL-1", product, {"Authorization": f"Bearer {staff}"})[0] == 200


def test_the_identity_table_holds_over_http(stack: RunningStack) -> None:
    """Every row of the contract's Identity table, through the local Cognito authorizer."""
    staff, ada, bob = stack.sign_in(staff=True), stack.sign_in(), stack.sign_in()
    product = {"name": "Id", "unit_price_cents": 100, "available": 10}
    assert staff.call("PUT", "/inventory/ID-1", product)[0] == 200
    assert ada.call("PUT", "/inventory/ID-1", product)[0] == 403  # a customer on a staff route
    assert stack.call("GET", "/inventory/ID-1")[0] == 200  # the catalog is public
    assert stack.call("POST", "/users", {"name": "Nobody"})[0] == 401  # no token
    status, ada_user = ada.call("POST", "/users", {"name": "Ada"})
    assert status == 201
    assert bob.call("POST", "/users", {"name": "Bob"})[0] == 201
    ada_id = ada_user["user_id"]
    order = {"items": [{"sku": "ID-1", "quantity": 1}], "payment_method": "pm_card_visa"}
    assert ada.call("POST", "/orders", {**order, "user_id": "someone-else"})[0] == 403
    placed = eventually(
        "orders to know Ada",
        lambda: (r := ada.call("POST", "/orders", order, {"Idempotency-Key": "same"}))[0] == 201 and r[1],
    )
    bobs = eventually(
        "orders to know Bob",
        lambda: (r := bob.call("POST", "/orders", order, {"Idempotency-Key": "same"}))[0] == 201 and r[1],
    )
    assert bobs["order_id"] != placed["order_id"]  # keys are scoped per caller
    own = [f"/users/{ada_id}", f"/users/{ada_id}/orders", f"/orders/{placed['order_id']}"]
    for path in own:
        assert ada.call("GET", path)[0] == 200, path
        assert staff.call("GET", path)[0] == 200, path
        status, body = bob.call("GET", path)
        assert (status, body["code"]) == (404, "not_found"), path  # as if it did not exist
    assert bob.call("POST", f"/orders/{placed['order_id']}/cancel")[0] == 404
    assert staff.call("POST", f"/orders/{bobs['order_id']}/cancel")[0] == 200


def bearer(api: Api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"}


def test_location_is_where_the_client_reads_what_it_created(stack: RunningStack) -> None:
    """The local API serves the stage at its root: a Location is a path of this API, stage or not."""
    url, staff, ada = stack.description["api_url"], stack.sign_in(staff=True), stack.sign_in()
    assert staff.call("PUT", "/inventory/E2E-LOC", {"name": "Loc", "unit_price_cents": 100, "available": 5})[0] == 200

    response, body = request(url, "POST", "/users", json.dumps({"name": "Ada"}).encode(), bearer(ada))
    location = response.getheader("Location", "")
    assert (response.status, location) == (201, f"/users/{json.loads(body)['user_id']}")
    assert ada.call("GET", location) == (200, json.loads(body))

    order = json.dumps({"items": [{"sku": "E2E-LOC", "quantity": 1}], "payment_method": "pm_card_visa"}).encode()
    response, body = eventually(
        "orders to know Ada", lambda: (r := request(url, "POST", "/orders", order, bearer(ada)))[0].status == 201 and r
    )
    location = response.getheader("Location", "")
    assert location == f"/orders/{json.loads(body)['order_id']}"
    assert ada.call("GET", location)[0] == 200


LONG_NUMBER = b'{"name": ' + b"1" * 5000 + b', "unit_price_cents": 1, "available": 1}'


def test_the_caller_then_the_body_then_the_path_ids_are_judged(stack: RunningStack) -> None:
    """401 and 403 whatever the request; a number of thousands of digits is a 400, never a 5xx; a
    path id of the wrong shape is a 404, like one that names nothing."""
    url, staff, customer = stack.description["api_url"], stack.sign_in(staff=True), stack.sign_in()
    for method, path in [("POST", "/users"), ("POST", "/orders"), ("PUT", "/inventory/E2E-NUM")]:
        caller = staff if method == "PUT" else customer
        assert_json_error(*request(url, method, path, LONG_NUMBER, bearer(caller)), 400, "number_too_long")
        assert_json_error(*request(url, method, path, LONG_NUMBER), 401, "unauthorized")
    for path in ("/inventory/E2E-NUM", "/inventory/NOT%20A%20SKU"):
        assert_json_error(*request(url, "PUT", path, LONG_NUMBER, bearer(customer)), 403, "forbidden")
        assert_json_error(*request(url, "PUT", path, b"{oops", bearer(customer)), 403, "forbidden")
    for method, path in [
        ("POST", "/orders/%19%7C4/cancel"),
        ("GET", "/users/6t%F3x"),
        ("GET", "/users/a%7Cb/orders"),
        ("GET", "/inventory/NOT%20A%20SKU"),
    ]:
        assert_json_error(*request(url, method, path, None, bearer(customer)), 404, "not_found")
