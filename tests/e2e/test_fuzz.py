"""Fuzzing the HTTP API against its OpenAPI document (issue 8).

schemathesis generates requests for every operation of docs/openapi.json: valid ones (positive)
and invalid ones (negative: wrong types, out-of-range or malformed values, unknown fields,
missing parameters, bodies that are not JSON), plus its coverage phase's boundary values and
methods no route has. It sends them to a local stack started for this module, signed in through
Cognito as a registered customer (as staff for ``PUT /inventory``, which customers may not call),
and checks every answer: no 5xx and no dropped connection; only the statuses, content types,
headers and bodies the document declares; every error the contract's JSON ``{"code",
"message"}``; invalid data refused with a 4xx; valid data never refused as invalid (400, 422);
a 2xx with the token is a 401 without one and with a bad one. Bodies the HTTP edge refuses
(too large, nested too deep) go to every operation too: schemathesis sends no body where the
document declares none.

The budget is MAX_EXAMPLES generated cases per operation (split between positive and negative)
plus the coverage phase's, and the seed is fixed, so every run sends the same requests.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, Response

from tests.e2e.running_stack import RunningStack, eventually

pytestmark = pytest.mark.e2e

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
MAX_EXAMPLES = 200  # generated cases per operation (fuzzing phase); the coverage phase adds 5 to 80 more
SEED = 8  # the number: the same requests on every run
STOCK = {"FUZZ-BOOK": 1_000_000, "FUZZ-PEN": 1_000_000}

schema = schemathesis.openapi.from_path(
    OPENAPI,
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "request-timeout": 30,
            # generation is slower on a busy machine; that says nothing about the API
            "suppress-health-check": ["too_slow"],
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "database": "none",  # nothing replayed from earlier runs: the seed alone decides
                # The token is ours (CognitoIdToken below): spend the negative budget on parameters
                # and bodies, not on made-up tokens; the ignored_auth check still sends every
                # operation that answered 2xx without a token and with a bad one.
                "with-security-parameters": False,
            },
            "phases": {"stateful": {"enabled": False}},  # the document declares no links
        }
    ),
)
DOCUMENTED = [(method.upper(), path) for path, item in schema.raw_schema["paths"].items() for method in item]


@dataclass
class Target:
    """What the fuzz learns from the stack before it starts: where, as whom, and what exists."""

    base_url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)  # role -> ID token
    known: dict[str, list[str]] = field(default_factory=dict)  # path parameter -> values that exist
    cursor: str = ""  # one the API issued for the customer's orders
    sent: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operation, status) -> cases


TARGET = Target()
ROLE = "role:"  # a case's Authorization names the caller; the test puts in their token


@schema.auth(refresh_interval=None)
class CognitoIdToken:
    """Coverage cases are built at collection, before the stack runs: the provider names the
    caller and the test sends that caller's token."""

    def get(self, case: Case, context: Any) -> str:
        return ROLE + ("staff" if case.method == "PUT" else "customer")

    def set(self, case: Case, data: str, context: Any) -> None:
        case.headers["Authorization"] = data


@schema.hook
def flatmap_case(context: Any, case: Case) -> Any:
    """A valid request may also name what exists (the customer's profile and orders, stocked skus,
    the customer's own user_id in an order), so that 200s and 201s are checked too."""
    if case.meta is None or not case.meta.generation.mode.is_positive or not TARGET.known:
        return st.just(case)
    choices: dict[str, Any] = {
        name: st.none() | st.sampled_from(TARGET.known[name])
        for name in case.path_parameters or {}
        if name in TARGET.known
    }
    if isinstance(case.body, dict) and "user_id" in case.body:
        choices["body.user_id"] = st.none() | st.just(TARGET.known["user_id"][0])

    def known(chosen: dict[str, str | None]) -> Case:
        user_id, body = chosen.pop("body.user_id", None), case.body
        if user_id is not None and isinstance(body, dict):
            case.body = {**body, "user_id": user_id}
        case.path_parameters = {**(case.path_parameters or {}), **{k: v for k, v in chosen.items() if v is not None}}
        return case

    return st.fixed_dictionaries(choices).map(known)


def as_the_contract_says(case: Case) -> None:
    """A request the document calls valid, made valid by the contract's rules that JSON Schema
    cannot state: no sku twice in an order; a cursor the API issued; integers written without a
    fraction (JSON Schema counts 1.0 as an integer, the API takes strict integers); and one
    Idempotency-Key per body (a key reused with another body is 422 idempotency_key_reused)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    body: Any = case.body
    if isinstance(body, dict):
        body = _without_fractions(body)
        if isinstance(body.get("items"), list):
            firsts: dict[Any, Any] = {}
            for item in body["items"]:
                firsts.setdefault(item["sku"], item)
            body["items"] = list(firsts.values())
        case.body = body
    if case.headers and case.headers.get("Idempotency-Key"):
        digest = hashlib.sha256(json.dumps(case.body, sort_keys=True).encode()).hexdigest()[:16]
        case.headers["Idempotency-Key"] = f"{case.headers['Idempotency-Key'][:238]}-{digest}"
    if case.query and case.query.get("cursor"):
        case.query = {**case.query, "cursor": TARGET.cursor}


def _without_fractions(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _without_fractions(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_without_fractions(item) for item in value]
    return int(value) if isinstance(value, float) and value.is_integer() else value


def contract_error_body(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every error, declared or not, is JSON with a code and a message (contract: HTTP API)."""
    assert_contract_error(response.status_code, response.content)
    return None


def assert_contract_error(status: int, content: bytes) -> None:
    if status < 400:
        return
    try:
        body = json.loads(content or b"")
    except ValueError:
        raise AssertionError(f"A {status} whose body is not JSON: {content[:200]!r}") from None
    code, message = (body.get("code"), body.get("message")) if isinstance(body, dict) else (None, None)
    assert isinstance(code, str) and code and isinstance(message, str) and message, (
        f"A {status} without the contract's error body: {body!r}"
    )


@schema.hook
def after_call(context: Any, case: Case, response: Response) -> None:
    TARGET.sent[(f"{case.method} {case.path}", str(response.status_code))] += 1


@pytest.fixture(scope="module")
def target(stack: RunningStack, request: pytest.FixtureRequest) -> Iterator[Target]:
    staff, customer = stack.sign_in(staff=True), stack.sign_in()
    for sku, available in STOCK.items():
        product = {"name": sku.title(), "unit_price_cents": 100, "available": available}
        assert staff.call("PUT", f"/inventory/{sku}", product)[0] == 200
    status, user = customer.call("POST", "/users", {"name": "Fuzz Customer"})
    assert status == 201, user
    order_body = {"items": [{"sku": "FUZZ-BOOK", "quantity": 1}], "payment_method": "pm_card_visa"}
    orders = [
        eventually(
            "the orders service to learn of the user",
            lambda: (answer := customer.call("POST", "/orders", order_body))[0] == 201 and answer[1],
        )
        for _ in range(2)
    ]
    status, page = customer.call("GET", f"/users/{user['user_id']}/orders?limit=1")
    assert status == 200 and page["next_cursor"], page
    TARGET.base_url = stack.description["api_url"]
    TARGET.tokens = {"customer": str(customer.token), "staff": str(staff.token)}
    TARGET.known = {
        "user_id": [user["user_id"]],
        "order_id": [order["order_id"] for order in orders],
        "sku": list(STOCK),
    }
    TARGET.cursor = page["next_cursor"]
    yield TARGET
    _report(request.config, TARGET.sent)


def _report(config: pytest.Config, sent: Counter[tuple[str, str]]) -> None:
    """One line per operation: how many cases it got and how it answered them."""
    documented = {f"{method} {path}" for method, path in DOCUMENTED}
    lines: dict[str, Counter[str]] = {}
    for (operation, status), count in sent.items():
        name = operation if operation in documented else "methods no route has"
        lines.setdefault(name, Counter())[status] += count
    reporter, capture = (config.pluginmanager.get_plugin(name) for name in ("terminalreporter", "capturemanager"))
    if reporter is None or capture is None or not sent:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_sep("-", f"fuzz: {sum(sent.values())} cases, MAX_EXAMPLES={MAX_EXAMPLES}, seed {SEED}")
        for name, statuses in sorted(lines.items(), key=lambda line: (line[0] not in documented, line[0])):
            answers = ", ".join(f"{status} x{count}" for status, count in sorted(statuses.items()))
            reporter.write_line(f"{name}: {statuses.total()} ({answers})")


@schema.parametrize()
def test_every_operation_answers_as_documented(case: Case, target: Target) -> None:
    authorization = str(case.headers.get("Authorization", ""))
    if authorization.startswith(ROLE):
        case.headers["Authorization"] = "Bearer " + target.tokens[authorization.removeprefix(ROLE)]
    as_the_contract_says(case)
    case.call_and_validate(base_url=target.base_url, additional_checks=[contract_error_body])


# What the HTTP edge checks in every request's body before any route reads it (shop_common.http).
EDGE_BODIES = {"over 64 KiB": b"1" * (64 * 1024 + 1), "nested 33 deep": b"[" * 33 + b"]" * 33}


@pytest.mark.parametrize("kind", list(EDGE_BODIES))
@pytest.mark.parametrize(("method", "path"), DOCUMENTED)
def test_a_body_the_edge_refuses_gets_a_documented_error(target: Target, method: str, path: str, kind: str) -> None:
    """The edge checks a body's size and nesting on every route, and the document declares both answers
    on every route."""
    role = "staff" if method == "PUT" else "customer"
    url = target.base_url + path.format(**{name: values[0] for name, values in target.known.items()})
    request = Request(url, EDGE_BODIES[kind], {"Authorization": f"Bearer {target.tokens[role]}"}, method=method)
    try:
        with urlopen(request, timeout=30) as response:
            status, body = response.status, response.read()
    except HTTPError as error:
        status, body = error.code, error.read()
    assert 400 <= status < 500, (status, body[:200])
    assert_contract_error(status, body)
    assert str(status) in schema.raw_schema["paths"][path][method.lower()]["responses"], (method, path, status)
