"""The HTTP edge every API function shares (shop_common.http): a body nested too deep is a
400 before anything parses it, a number of more digits than Python converts is a 400, a path id
of the wrong shape is a 404 like one that names nothing, and an unreachable MongoDB or an
unreadable connection string secret is a 503 with Retry-After, never a 500; an event consumer
then fails the record so that SQS delivers it again."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from pymongo import MongoClient

from devstack.mongod import free_port
from inventory import api as inventory_api
from inventory import consumer as inventory_consumer
from orders import api as orders_api
from orders import consumer as orders_consumer
from shop_common import mongo
from shop_common.http import MAX_NESTING_DEPTH
from tests.support import ServiceRuntime, api_event, envelope, failed_ids, sqs_batch
from users import api as users_api

Handler = Callable[[dict[str, Any], Any], Any]

# (service, handler, sample event) of each route that takes a body
BODY_ROUTES: list[tuple[str, Handler, str]] = [
    ("users", users_api.handler, "api-users-create"),
    ("orders", orders_api.handler, "api-orders-create"),
    ("inventory", inventory_api.handler, "api-inventory-put"),
]
BODY_ROUTE_IDS = [sample for _, _, sample in BODY_ROUTES]


def nested_arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def assert_error_body(body: Any, code: str) -> None:
    assert set(body) == {"code", "message"}
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert "Traceback" not in body["message"]


# --- nesting ---


@pytest.mark.parametrize(("service", "handler", "sample"), BODY_ROUTES, ids=BODY_ROUTE_IDS)
@pytest.mark.parametrize(
    "raw_body",
    [
        nested_arrays(20_000),  # 40 KB: under the size limit, over any recursion limit
        nested_objects(10_000),
        json.dumps({"name": json.loads(nested_arrays(MAX_NESTING_DEPTH))}),  # one level too many
        '{"name": "a\\"b", "x": ' + nested_arrays(40) + "}",  # an escaped quote does not end the string
    ],
    ids=["arrays", "objects", "just-over-the-limit", "after-an-escaped-quote"],
)
def test_a_body_nested_too_deep_is_400_in_every_api(
    runtimes: dict[str, ServiceRuntime], service: str, handler: Handler, sample: str, raw_body: str
) -> None:
    assert len(raw_body.encode()) < 64 * 1024
    response = runtimes[service].http(handler, api_event(sample, raw_body=raw_body))
    assert response.status == 400
    assert_error_body(response.body, "nesting_too_deep")


@pytest.mark.parametrize(("service", "handler", "sample"), BODY_ROUTES, ids=BODY_ROUTE_IDS)
def test_nesting_at_the_limit_is_parsed_and_validated(
    runtimes: dict[str, ServiceRuntime], service: str, handler: Handler, sample: str
) -> None:
    raw_body = json.dumps({"name": json.loads(nested_arrays(MAX_NESTING_DEPTH - 1))})
    response = runtimes[service].http(handler, api_event(sample, raw_body=raw_body))
    assert response.status == 422
    assert response.body["code"] == "validation_error"


BRACKETS = '[[[[{{{{"\\' * 10  # 100 characters, quotes and backslashes included


def test_brackets_inside_strings_do_not_count_as_nesting(runtimes: dict[str, ServiceRuntime]) -> None:
    user = runtimes["users"].http(users_api.handler, api_event("api-users-create", body={"name": BRACKETS}))
    assert (user.status, user.body["name"]) == (201, BRACKETS)

    product = runtimes["inventory"].http(
        inventory_api.handler,
        api_event("api-inventory-put", body={"name": BRACKETS, "unit_price_cents": 1, "available": 1}),
    )
    assert (product.status, product.body["name"]) == (200, BRACKETS)

    # a sku may not hold brackets: refused by validation, so the body was parsed, not refused as nested
    items = [{"sku": "[" * 60, "quantity": 1}]
    order = runtimes["orders"].http(
        orders_api.handler,
        api_event("api-orders-create", body={"items": items, "payment_method": "pm_card_visa"}),
    )
    assert (order.status, order.body["code"]) == (422, "validation_error")


# --- numbers of thousands of digits ---


def with_number(digits: str) -> str:
    return '{"name": ' + digits + ', "unit_price_cents": 1, "available": 1}'


@pytest.mark.parametrize(("service", "handler", "sample"), BODY_ROUTES, ids=BODY_ROUTE_IDS)
@pytest.mark.parametrize(
    "raw_body",
    [
        with_number("1" * (sys.get_int_max_str_digits() + 1)),  # one digit more than json.loads converts
        with_number("-" + "9" * 60_000),  # under the size limit
        '{"items": [{"sku": "A", "quantity": ' + "7" * 5000 + "}]}",  # deep inside
    ],
    ids=["just-over-the-limit", "negative-60000-digits", "nested"],
)
def test_a_number_of_thousands_of_digits_is_400_in_every_api(
    runtimes: dict[str, ServiceRuntime], service: str, handler: Handler, sample: str, raw_body: str
) -> None:
    response = runtimes[service].http(handler, api_event(sample, raw_body=raw_body))
    assert response.status == 400
    assert_error_body(response.body, "number_too_long")


@pytest.mark.parametrize(("service", "handler", "sample"), BODY_ROUTES, ids=BODY_ROUTE_IDS)
def test_a_number_at_the_digit_limit_is_parsed_and_validated(
    runtimes: dict[str, ServiceRuntime], service: str, handler: Handler, sample: str
) -> None:
    raw_body = with_number("1" * sys.get_int_max_str_digits())
    response = runtimes[service].http(handler, api_event(sample, raw_body=raw_body))
    assert (response.status, response.body["code"]) == (422, "validation_error")


# --- path ids of the wrong shape ---

# (service, handler, sample, path parameter) of every route with a path id; each sample's caller may call it
PATH_ID_ROUTES: list[tuple[str, Handler, str, str]] = [
    ("users", users_api.handler, "api-users-get", "user_id"),
    ("orders", orders_api.handler, "api-orders-get", "order_id"),
    ("orders", orders_api.handler, "api-orders-list", "user_id"),
    ("orders", orders_api.handler, "api-orders-cancel", "order_id"),
    ("inventory", inventory_api.handler, "api-inventory-get", "sku"),
    ("inventory", inventory_api.handler, "api-inventory-put", "sku"),
]
# Each reaches its route (Powertools matches it) and fails the id's pattern.
WRONG_SHAPES = {
    "percent-encoded": "%19%7C4",  # as the local API passes a path it did not decode
    "non-ascii": "6t\u00f3x",
    "a-pipe": "a|b",
    "a-space": "a b",
    "65-characters": "S" * 65,
}


@pytest.mark.parametrize("wrong", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
@pytest.mark.parametrize(
    ("service", "handler", "sample", "name"), PATH_ID_ROUTES, ids=[route[2] for route in PATH_ID_ROUTES]
)
def test_a_path_id_of_the_wrong_shape_is_404_not_found(
    runtimes: dict[str, ServiceRuntime], service: str, handler: Handler, sample: str, name: str, wrong: str
) -> None:
    response = runtimes[service].http(handler, api_event(sample, path_params={name: wrong}))
    assert response.status == 404
    assert_error_body(response.body, "not_found")


# --- MongoDB unreachable ---


@pytest.fixture
def mongodb_down(runtimes: dict[str, ServiceRuntime]) -> Iterator[dict[str, ServiceRuntime]]:
    """Every service pointed at a closed port of 127.0.0.1. Its client is the functions' own
    but for timeouts of 300 ms instead of 3 s, so that each failure is quick to see."""
    uri = f"mongodb://127.0.0.1:{free_port()}/"
    clients: list[MongoClient] = []

    def quickly_failing_client(uri: str, app_name: str) -> MongoClient:
        clients.append(MongoClient(uri, appname=app_name, serverSelectionTimeoutMS=300, connectTimeoutMS=300))
        return clients[-1]

    with mock.patch.object(mongo, "client_for", quickly_failing_client):
        yield {name: ServiceRuntime({**runtime.env, "MONGODB_URI": uri}) for name, runtime in runtimes.items()}
    for client in clients:
        client.close()


@pytest.fixture
def secret_unreadable(runtimes: dict[str, ServiceRuntime]) -> dict[str, ServiceRuntime]:
    """Every service without a connection string but for a secret that cannot be read."""
    return {
        name: ServiceRuntime({**runtime.env, "MONGODB_URI": "", "MONGODB_SECRET_ID": "shop/test/no-such-secret"})
        for name, runtime in runtimes.items()
    }


def without_idempotency_key(event: dict[str, Any]) -> dict[str, Any]:
    event["headers"].pop("Idempotency-Key")
    event["multiValueHeaders"].pop("Idempotency-Key")
    return event


# (service, handler, request) of a read and a write of every API
EVERY_API_REQUEST: list[tuple[str, Handler, Callable[[], dict[str, Any]]]] = [
    ("users", users_api.handler, lambda: api_event("api-users-get")),
    ("users", users_api.handler, lambda: api_event("api-users-create")),
    ("orders", orders_api.handler, lambda: api_event("api-orders-get")),
    ("orders", orders_api.handler, lambda: api_event("api-orders-list")),
    ("orders", orders_api.handler, lambda: without_idempotency_key(api_event("api-orders-create"))),
    ("orders", orders_api.handler, lambda: api_event("api-orders-create")),  # with an Idempotency-Key
    ("orders", orders_api.handler, lambda: api_event("api-orders-cancel")),
    ("inventory", inventory_api.handler, lambda: api_event("api-inventory-get")),
    ("inventory", inventory_api.handler, lambda: api_event("api-inventory-put")),
]
EVERY_API_REQUEST_IDS = [
    "users-get",
    "users-create",
    "orders-get",
    "orders-list",
    "orders-create",
    "orders-create-keyed",
    "orders-cancel",
    "inventory-get",
    "inventory-put",
]


def assert_service_unavailable(response: Any) -> None:
    assert response.status == 503
    assert_error_body(response.body, "service_unavailable")
    assert response.headers["Retry-After"].isdigit()
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(("service", "handler", "request_event"), EVERY_API_REQUEST, ids=EVERY_API_REQUEST_IDS)
def test_mongodb_unreachable_is_503_with_retry_after_in_every_api(
    mongodb_down: dict[str, ServiceRuntime], service: str, handler: Handler, request_event: Callable[[], Any]
) -> None:
    response = mongodb_down[service].http(handler, request_event())
    assert_service_unavailable(response)
    assert "X-Correlation-Id" in response.headers


@pytest.mark.parametrize(("service", "handler", "request_event"), EVERY_API_REQUEST, ids=EVERY_API_REQUEST_IDS)
def test_an_unreadable_connection_string_secret_is_503(
    secret_unreadable: dict[str, ServiceRuntime], service: str, handler: Handler, request_event: Callable[[], Any]
) -> None:
    assert_service_unavailable(secret_unreadable[service].http(handler, request_event()))


ORDER_ITEMS = [{"sku": "BOOK-1", "quantity": 1}]


@pytest.mark.parametrize(
    ("service", "handler", "sample", "body"),
    [
        (
            "inventory",
            inventory_consumer.handler,
            "sqs-inventory-batch",
            envelope(
                "OrderPlaced",
                "orders",
                {"order_id": "o1", "user_id": "u1", "items": ORDER_ITEMS, "payment_method": "pm_card_visa"},
            ),
        ),
        (
            "orders",
            orders_consumer.handler,
            "sqs-orders-batch",
            envelope("UserRegistered", "users", {"user_id": "u1", "email": "a@example.com", "name": "A"}),
        ),
    ],
    ids=["inventory", "orders"],
)
def test_mongodb_unreachable_fails_the_record_so_sqs_retries_it(
    mongodb_down: dict[str, ServiceRuntime], service: str, handler: Handler, sample: str, body: str
) -> None:
    batch = sqs_batch(sample, [body])
    assert failed_ids(mongodb_down[service].invoke(handler, batch)) == [batch["Records"][0]["messageId"]]
