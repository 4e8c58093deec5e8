"""Who may call what (the contract's Identity table), in-process with the claims API Gateway's
Cognito authorizer passes on: every route but ``GET /inventory/{sku}`` needs a caller (401 without
one), ``PUT /inventory`` is staff's (403), and another user's profile, orders or order is 404
exactly as if it did not exist, unless the caller is staff. The caller is judged before anything
else of the request: its body, path ids and query."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import MongoClient

from inventory import api as inventory_api
from orders import api as orders_api
from shop_common.identity import Caller
from tests.conftest import AwsResources
from tests.integration.test_orders_api import cancel, get_order, list_page, place, register_user
from tests.support import ADA, GRACE, Response, ServiceRuntime, api_event, customer, sample_event, staff_member
from users import api as users_api

Handler = Callable[[dict[str, Any], Any], Any]

# (service, handler, sample) of every route behind the authorizer, each sample a valid request
SIGNED_IN_ROUTES: list[tuple[str, Handler, str]] = [
    ("users", users_api.handler, "api-users-create"),
    ("users", users_api.handler, "api-users-get"),
    ("orders", orders_api.handler, "api-orders-create"),  # with an Idempotency-Key
    ("orders", orders_api.handler, "api-orders-get"),
    ("orders", orders_api.handler, "api-orders-list"),
    ("orders", orders_api.handler, "api-orders-cancel"),
    ("inventory", inventory_api.handler, "api-inventory-put"),
]
SIGNED_IN_IDS = [sample for _, _, sample in SIGNED_IN_ROUTES]


def profile(runtimes: dict[str, ServiceRuntime], user_id: str, caller: Caller) -> Response:
    event = api_event("api-users-get", path_params={"user_id": user_id}, caller=caller)
    return runtimes["users"].http(users_api.handler, event)


def put_product(runtimes: dict[str, ServiceRuntime], caller: Caller, available: int = 5) -> Response:
    body = {"name": "Book", "unit_price_cents": 2500, "available": available}
    event = api_event("api-inventory-put", body=body, path_params={"sku": "BOOK-1"}, caller=caller)
    return runtimes["inventory"].http(inventory_api.handler, event)


def product(runtimes: dict[str, ServiceRuntime]) -> Response:
    event = api_event("api-inventory-get", path_params={"sku": "BOOK-1"}, anonymous=True)
    return runtimes["inventory"].http(inventory_api.handler, event)


@dataclass
class Shop:
    runtimes: dict[str, ServiceRuntime]
    order_id: str  # Ada's
    bob: Caller  # another customer, registered


@pytest.fixture
def shop(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> Shop:
    register_user(runtimes, aws, ADA)
    bob = register_user(runtimes, aws, customer("bob"))
    order = place(runtimes["orders"], ADA)
    assert order.status == 201
    return Shop(runtimes, order.body["order_id"], bob)


def assert_error(response: Response, status: int, code: str) -> None:
    assert response.status == status
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.body) == {"code", "message"}
    assert response.body["code"] == code


# --- 401: no caller, or claims that are not a caller ---


@pytest.mark.parametrize(("service", "handler", "sample"), SIGNED_IN_ROUTES, ids=SIGNED_IN_IDS)
def test_every_signed_in_route_without_claims_is_401_and_does_nothing(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient, service: str, handler: Handler, sample: str
) -> None:
    response = runtimes[service].http(handler, api_event(sample, anonymous=True))

    assert_error(response, 401, "unauthorized")
    assert "X-Correlation-Id" in response.headers
    database = mongo_client[runtimes[service].env["MONGODB_DATABASE"]]
    assert all(database[name].count_documents({}) == 0 for name in database.list_collection_names())


# Requests wrong in every part but the caller: what each would answer with a caller (400, 404, 413, 422)
# must not be what a request without one learns.
BAD_BODIES = {
    "not-json": "{oops",
    "invalid": json.dumps({"name": "", "unit_price_cents": -1, "items": [], "unknown": 1}),
    "nested-too-deep": "[" * 40 + "]" * 40,
    "too-large": json.dumps({"name": "x" * (64 * 1024)}),
    "number-too-long": '{"name": ' + "1" * 5000 + "}",
}
WRONG_ID = "not an id!"  # reaches every route and fails every id's pattern


def spoiled(sample: str, raw_body: str, caller: Caller | None = None, anonymous: bool = False) -> dict[str, Any]:
    """The sample with ``raw_body``, every path id of the wrong shape and a bad query."""
    path_params = {name: WRONG_ID for name in sample_event(sample).get("pathParameters") or {}}
    query = {"limit": "0"}
    return api_event(
        sample, raw_body=raw_body, path_params=path_params or None, query=query, caller=caller, anonymous=anonymous
    )


@pytest.mark.parametrize("raw_body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
@pytest.mark.parametrize(("service", "handler", "sample"), SIGNED_IN_ROUTES, ids=SIGNED_IN_IDS)
def test_every_signed_in_route_without_claims_is_401_whatever_the_request(
    runtimes: dict[str, ServiceRuntime], service: str, handler: Handler, sample: str, raw_body: str
) -> None:
    response = runtimes[service].http(handler, spoiled(sample, raw_body, anonymous=True))
    assert_error(response, 401, "unauthorized")


MALFORMED_CLAIMS = {
    "no-sub": {"email": "ada@example.com", "token_use": "id"},
    "empty-sub": {"sub": "", "email": "ada@example.com"},
    "no-email": {"sub": ADA.user_id, "token_use": "access"},  # an access token has no email
    "groups-not-a-string": {"sub": ADA.user_id, "email": "ada@example.com", "cognito:groups": 1},
}


@pytest.mark.parametrize("claims", MALFORMED_CLAIMS.values(), ids=MALFORMED_CLAIMS.keys())
@pytest.mark.parametrize(("service", "handler", "sample"), SIGNED_IN_ROUTES, ids=SIGNED_IN_IDS)
def test_every_signed_in_route_with_malformed_claims_is_401(
    runtimes: dict[str, ServiceRuntime], service: str, handler: Handler, sample: str, claims: dict[str, Any]
) -> None:
    event = api_event(sample)
    event["requestContext"]["authorizer"]["claims"] = claims
    assert_error(runtimes[service].http(handler, event), 401, "unauthorized")


def test_the_catalogue_is_public(shop: Shop) -> None:
    assert put_product(shop.runtimes, GRACE).status == 200
    read = product(shop.runtimes)
    assert (read.status, read.body["available"]) == (200, 5)


# --- 403: a route the caller may not use at all ---


def test_a_customer_may_not_set_products_or_stock(shop: Shop) -> None:
    assert put_product(shop.runtimes, GRACE, available=5).status == 200

    assert_error(put_product(shop.runtimes, ADA, available=0), 403, "forbidden")
    assert_error(put_product(shop.runtimes, customer("new"), available=0), 403, "forbidden")
    assert product(shop.runtimes).body["available"] == 5


@pytest.mark.parametrize("raw_body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
@pytest.mark.parametrize("who", [ADA, customer("new")], ids=["registered-customer", "unknown-customer"])
def test_a_customer_on_a_staff_route_is_403_whatever_the_request(
    runtimes: dict[str, ServiceRuntime], who: Caller, raw_body: str
) -> None:
    for event in (
        api_event("api-inventory-put", raw_body=raw_body, caller=who),
        spoiled("api-inventory-put", raw_body, caller=who),
    ):
        assert_error(runtimes["inventory"].http(inventory_api.handler, event), 403, "forbidden")


# --- 404: another user's profile, orders or order, exactly as if it did not exist ---


def test_another_customers_order_is_404_like_an_order_that_does_not_exist(shop: Shop) -> None:
    orders = shop.runtimes["orders"]
    missing = get_order(orders, "no-such-order", shop.bob)
    assert_error(missing, 404, "not_found")

    for response, what_missing_says in [
        (get_order(orders, shop.order_id, shop.bob), missing),
        (cancel(orders, shop.order_id, shop.bob), cancel(orders, "no-such-order", shop.bob)),
    ]:
        assert_error(response, 404, "not_found")
        assert response.body["message"] == what_missing_says.body["message"].replace("no-such-order", shop.order_id)
    assert get_order(orders, shop.order_id, ADA).body["status"] == "PENDING"  # not cancelled


def test_another_users_order_list_is_404(shop: Shop) -> None:
    orders = shop.runtimes["orders"]
    for user_id in (ADA.user_id, "no-such-user"):
        assert_error(list_page(orders, user_id, shop.bob), 404, "not_found")
    assert list_page(orders, shop.bob.user_id, shop.bob).body == {"orders": [], "next_cursor": None}


def test_another_users_profile_is_404(shop: Shop) -> None:
    existing = profile(shop.runtimes, ADA.user_id, shop.bob)
    missing = profile(shop.runtimes, "no-such-user", shop.bob)
    assert_error(existing, 404, "not_found")
    assert existing.body["message"] == missing.body["message"].replace("no-such-user", ADA.user_id)


# --- staff: any profile, orders and order; the stock ---


@pytest.mark.parametrize("staff", [GRACE, staff_member()], ids=["sample-staff", "unregistered-staff"])
def test_staff_read_and_cancel_anyones(shop: Shop, staff: Caller) -> None:
    orders = shop.runtimes["orders"]

    adas_profile = profile(shop.runtimes, ADA.user_id, staff)
    order = get_order(orders, shop.order_id, staff)
    listed = list_page(orders, ADA.user_id, staff)
    cancelled = cancel(orders, shop.order_id, staff)

    assert (adas_profile.status, adas_profile.body["user_id"]) == (200, ADA.user_id)
    assert (order.status, order.body["user_id"]) == (200, ADA.user_id)
    assert (listed.status, [o["order_id"] for o in listed.body["orders"]]) == (200, [shop.order_id])
    assert (cancelled.status, cancelled.body["status"]) == (200, "CANCELLED")
    assert put_product(shop.runtimes, staff).status == 200


# --- a customer's own: everything works ---


def test_a_customer_does_everything_with_their_own(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> None:
    me = register_user(runtimes, aws, customer("me"))
    orders = runtimes["orders"]

    own_profile = profile(runtimes, me.user_id, me)
    placed = place(orders, me, key="mine")
    fetched = get_order(orders, placed.body["order_id"], me)
    listed = list_page(orders, me.user_id, me)
    cancelled = cancel(orders, placed.body["order_id"], me)

    assert (own_profile.status, own_profile.body["email"]) == (200, me.email.lower())
    assert (placed.status, placed.body["user_id"]) == (201, me.user_id)
    assert (fetched.status, fetched.body) == (200, placed.body)
    assert (listed.status, listed.body["orders"]) == (200, [placed.body])
    assert (cancelled.status, cancelled.body["status"]) == (200, "CANCELLED")
