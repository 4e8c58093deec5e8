"""Orders API and consumer, in-process with the sample events, on the real mongod and moto.
Orders are placed by the caller for themselves; each is seen (and cancelled) by its owner or staff."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from pymongo import MongoClient

from orders import api as orders_api
from orders import consumer as orders_consumer
from orders import relay
from shop_common.identity import Caller
from tests.conftest import AwsResources
from tests.support import (
    ADA,
    GRACE,
    Response,
    ServiceRuntime,
    api_event,
    customer,
    deliver_all,
    received_events,
)
from users import api as users_api

ITEMS = [{"sku": "BOOK-1", "quantity": 2}, {"sku": "PEN-7", "quantity": 1}]


def register_user(runtimes: dict[str, ServiceRuntime], aws: AwsResources, caller: Caller = ADA) -> Caller:
    """The caller registers through the users API; the orders service learns of it from its queue."""
    user = runtimes["users"].http(users_api.handler, api_event("api-users-create", body={"name": "A"}, caller=caller))
    assert user.status == 201
    assert deliver_all(aws.queue_urls["orders"], runtimes["orders"], orders_consumer.handler) == 1
    return caller


def place(
    orders: ServiceRuntime,
    caller: Caller,
    items: list[dict[str, Any]] = ITEMS,
    key: str | None = None,
    user_id: str | None = None,
) -> Response:
    """The caller places an order (``user_id``: sent in the body, if given)."""
    body = {"items": items, "payment_method": "pm_card_visa", **({"user_id": user_id} if user_id else {})}
    event = api_event("api-orders-create", body=body, caller=caller)
    if key:
        event["headers"]["Idempotency-Key"] = key
    else:
        event["headers"].pop("Idempotency-Key")
        event["multiValueHeaders"].pop("Idempotency-Key")
    return orders.http(orders_api.handler, event)


def get_order(orders: ServiceRuntime, order_id: str, caller: Caller = ADA) -> Response:
    return orders.http(
        orders_api.handler, api_event("api-orders-get", path_params={"order_id": order_id}, caller=caller)
    )


def orders_db(mongo_client: MongoClient, runtime: ServiceRuntime) -> Any:
    return mongo_client[runtime.env["MONGODB_DATABASE"]]


@pytest.fixture
def ada(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> Caller:
    """The samples' customer, registered and known to the orders service."""
    return register_user(runtimes, aws)


def test_orders_service_learns_of_users_from_user_registered(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    caller = register_user(runtimes, aws)
    assert orders_db(mongo_client, runtimes["orders"])["known_users"].find_one({"_id": caller.user_id}) is not None


@pytest.mark.parametrize("user_id", [None, ADA.user_id], ids=["user-id-left-out", "own-user-id"])
def test_place_order_is_201_pending_and_announced(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, ada: Caller, user_id: str | None
) -> None:
    response = place(runtimes["orders"], ada, user_id=user_id)

    assert response.status == 201
    order = response.body
    assert order["status"] == "PENDING"
    assert order["user_id"] == ada.user_id
    assert order["items"] == ITEMS
    assert order["total_cents"] is None
    assert order["payment_status"] is None
    assert order["reason"] is None
    assert order["created_at"] == order["updated_at"]
    assert [entry["status"] for entry in order["history"]] == ["PENDING"]
    assert response.headers["Location"] == f"/dev/orders/{order['order_id']}"  # the sample's stage: dev
    [event] = received_events(aws.queue_urls["inventory"])
    assert event["event_type"] == "OrderPlaced"
    assert event["source"] == "orders"
    assert event["correlation_id"] == response.headers["X-Correlation-Id"]
    assert event["data"] == {
        "order_id": order["order_id"],
        "user_id": ada.user_id,
        "items": ITEMS,
        "payment_method": "pm_card_visa",
    }


# The path the client called (requestContext.path) -> its stage or base path, before /orders.
CALLED_PATHS = {"stage": "/dev/orders", "custom-domain-base-path": "/shop/v1/orders", "custom-domain-root": "/orders"}


@pytest.mark.parametrize("key", [None, "key-location"], ids=["no-key", "idempotency-key"])
@pytest.mark.parametrize("called", CALLED_PATHS.values(), ids=CALLED_PATHS.keys())
def test_location_is_the_new_orders_path_as_the_client_called_it(
    runtimes: dict[str, ServiceRuntime], ada: Caller, called: str, key: str | None
) -> None:
    event = api_event("api-orders-create", body={"items": ITEMS, "payment_method": "pm_card_visa"}, caller=ada)
    event["requestContext"]["path"] = called
    if key is None:
        event["headers"].pop("Idempotency-Key")
        event["multiValueHeaders"].pop("Idempotency-Key")
    else:
        event["headers"]["Idempotency-Key"] = event["multiValueHeaders"]["Idempotency-Key"][0] = key
    responses = [runtimes["orders"].http(orders_api.handler, event) for _ in range(2 if key else 1)]

    for response in responses:  # a replay too
        assert response.status == 201
        assert response.headers["Location"] == f"{called}/{responses[0].body['order_id']}"
    fetched = get_order(runtimes["orders"], responses[0].headers["Location"].rsplit("/", 1)[1], ada)
    assert fetched.body == responses[0].body


def test_a_null_user_id_is_422_validation_error(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient, ada: Caller
) -> None:
    body = {"user_id": None, "items": ITEMS, "payment_method": "pm_card_visa"}
    response = runtimes["orders"].http(orders_api.handler, api_event("api-orders-create", body=body, caller=ada))
    assert response.status == 422, response.body
    assert response.body["code"] == "validation_error"
    assert [issue["loc"] for issue in response.body["details"]] == [["body", "user_id"]]
    assert orders_db(mongo_client, runtimes["orders"])["orders"].count_documents({}) == 0


def test_an_order_by_a_caller_without_a_profile_is_422_unknown_user(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient
) -> None:
    response = place(runtimes["orders"], customer())
    assert response.status == 422
    assert response.body["code"] == "unknown_user"
    assert orders_db(mongo_client, runtimes["orders"])["orders"].count_documents({}) == 0


@pytest.mark.parametrize("caller", [ADA, GRACE], ids=["customer", "staff"])
def test_an_order_for_someone_else_is_403_forbidden_even_for_staff(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, caller: Caller
) -> None:
    register_user(runtimes, aws, caller)
    bob = register_user(runtimes, aws, customer("bob"))

    for key in (None, "key-for-bob"):
        response = place(runtimes["orders"], caller, key=key, user_id=bob.user_id)
        assert (response.status, response.body["code"]) == (403, "forbidden")
    database = orders_db(mongo_client, runtimes["orders"])
    assert (database["orders"].count_documents({}), database["idempotency"].count_documents({})) == (0, 0)
    assert received_events(aws.queue_urls["inventory"]) == []


PM = {"payment_method": "pm_card_visa"}


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "u", "items": [], **PM},
        {"user_id": "u", "items": [{"sku": f"S{i}", "quantity": 1} for i in range(51)], **PM},
        {"user_id": "u", "items": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}], **PM},
        {"user_id": "u", "items": [{"sku": "A", "quantity": 0}], **PM},
        {"user_id": "u", "items": [{"sku": "A", "quantity": 1001}], **PM},
        {"user_id": "u", "items": [{"sku": "A", "quantity": "2"}], **PM},
        {"user_id": "u", "items": [{"sku": "A B", "quantity": 1}], **PM},
        {"user_id": "u", "items": [{"sku": "A" * 65, "quantity": 1}], **PM},
        {"user_id": "u", "items": [{"sku": "A", "quantity": 1, "price": 1}], **PM},
        {"user_id": "u", "items": [{"sku": "A", "quantity": 1}], "status": "CONFIRMED", **PM},
        {"user_id": {"$gt": ""}, "items": [{"sku": "A", "quantity": 1}], **PM},
        {"user_id": "u", "items": [{"sku": {"$ne": None}, "quantity": 1}], **PM},
        {"user_id": "", "items": [{"sku": "A", "quantity": 1}], **PM},
        {"user_id": "a b", "items": [{"sku": "A", "quantity": 1}], **PM},
        {"items": [{"sku": "A", "quantity": 1}]},
        {"user_id": "u", "items": [{"sku": "A", "quantity": 1}]},
        {"user_id": "u", "items": [{"sku": "A", "quantity": 1}], "payment_method": ""},
        {"user_id": "u", "items": [{"sku": "A", "quantity": 1}], "payment_method": "4242 4242 4242 4242"},
        {"user_id": "u", "items": [{"sku": "A", "quantity": 1}], "payment_method": "pm_" + "x" * 253},
        {"user_id": "u", "items": [{"sku": "A", "quantity": 1}], "payment_method": {"$gt": ""}},
    ],
)
def test_invalid_orders_are_422_validation_error(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient, body: dict[str, Any]
) -> None:
    response = runtimes["orders"].http(orders_api.handler, api_event("api-orders-create", body=body))
    assert response.status == 422
    assert response.body["code"] == "validation_error"
    assert response.body["details"]
    assert orders_db(mongo_client, runtimes["orders"])["idempotency"].count_documents({}) == 0


@pytest.mark.parametrize(
    ("raw_body", "status", "code"),
    [('{"user_id": ', 400, "invalid_json"), ("x" * (64 * 1024 + 1), 413, "payload_too_large")],
)
def test_unparseable_or_oversized_bodies_are_4xx(
    runtimes: dict[str, ServiceRuntime], raw_body: str, status: int, code: str
) -> None:
    response = runtimes["orders"].http(orders_api.handler, api_event("api-orders-create", raw_body=raw_body))
    assert (response.status, response.body["code"]) == (status, code)


def test_same_idempotency_key_and_body_replays_the_first_response(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, ada: Caller
) -> None:
    first = place(runtimes["orders"], ada, key="key-1")
    again = place(runtimes["orders"], ada, key="key-1")

    assert first.status == again.status == 201
    assert again.body == first.body
    assert again.headers["Location"] == first.headers["Location"]
    assert orders_db(mongo_client, runtimes["orders"])["orders"].count_documents({}) == 1
    assert len(received_events(aws.queue_urls["inventory"])) == 1


def test_idempotency_key_reused_with_another_body_is_422(runtimes: dict[str, ServiceRuntime], ada: Caller) -> None:
    place(runtimes["orders"], ada, key="key-2")
    other = place(runtimes["orders"], ada, items=[{"sku": "BOOK-1", "quantity": 3}], key="key-2")
    assert other.status == 422
    assert other.body["code"] == "idempotency_key_reused"


def test_the_same_idempotency_key_from_two_callers_places_two_orders(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, ada: Caller
) -> None:
    bob = register_user(runtimes, aws, customer("bob"))

    adas = place(runtimes["orders"], ada, key="shared-key")
    bobs = place(runtimes["orders"], bob, items=[{"sku": "PEN-7", "quantity": 5}], key="shared-key")
    adas_again = place(runtimes["orders"], ada, key="shared-key")

    assert (adas.status, bobs.status) == (201, 201)  # not 422 idempotency_key_reused: not the same request
    assert adas.body["order_id"] != bobs.body["order_id"]
    assert (adas.body["user_id"], bobs.body["user_id"]) == (ada.user_id, bob.user_id)
    assert adas_again.body == adas.body
    database = orders_db(mongo_client, runtimes["orders"])
    assert database["orders"].count_documents({}) == 2
    assert database["idempotency"].count_documents({"status": "COMPLETED"}) == 2
    assert len(received_events(aws.queue_urls["inventory"])) == 2


def test_a_4xx_stores_nothing_under_the_key(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    failed = place(runtimes["orders"], ADA, key="key-3")
    assert failed.body["code"] == "unknown_user"
    assert orders_db(mongo_client, runtimes["orders"])["idempotency"].count_documents({}) == 0

    register_user(runtimes, aws)
    retried = place(runtimes["orders"], ADA, key="key-3")
    assert retried.status == 201


def test_idempotency_keys_are_kept_24_hours_with_a_ttl_index(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient, ada: Caller
) -> None:
    place(runtimes["orders"], ada, key="key-4")
    collection = orders_db(mongo_client, runtimes["orders"])["idempotency"]
    [record] = collection.find()
    assert record["status"] == "COMPLETED"
    assert record["expires_at"] - datetime.now(UTC) > timedelta(hours=23, minutes=59)
    ttl = [index for index in collection.list_indexes() if "expireAfterSeconds" in index]
    assert [(dict(index["key"]), index["expireAfterSeconds"]) for index in ttl] == [({"expires_at": 1}, 0)]


def test_same_key_while_the_first_request_runs_is_409_in_flight(
    runtimes: dict[str, ServiceRuntime], ada: Caller
) -> None:
    orders = runtimes["orders"]
    place(orders, ada)  # warm the container so both calls share its dependencies
    inside, release = threading.Event(), threading.Event()
    real_place = orders_api.service().place

    def slow_place(*args: Any, **kwargs: Any) -> Any:
        inside.set()
        release.wait(5)
        return real_place(*args, **kwargs)

    results: list[Any] = []
    with mock.patch.object(orders_api.service(), "place", side_effect=slow_place):
        first = threading.Thread(target=lambda: results.append(place(orders, ada, key="key-5")))
        first.start()
        assert inside.wait(5)
        concurrent = place(orders, ada, key="key-5")
        release.set()
        first.join()

    assert concurrent.status == 409
    assert concurrent.body["code"] == "idempotency_key_in_flight"
    assert results[0].status == 201


def test_get_order_and_404(runtimes: dict[str, ServiceRuntime], ada: Caller) -> None:
    created = place(runtimes["orders"], ada).body
    fetched = get_order(runtimes["orders"], created["order_id"])
    missing = runtimes["orders"].http(orders_api.handler, api_event("api-orders-get"))
    assert (fetched.status, fetched.body) == (200, created)
    assert (missing.status, missing.body["code"]) == (404, "not_found")


def list_page(orders: ServiceRuntime, user_id: str, caller: Caller | None = None, **query: str) -> Response:
    """A page of ``user_id``'s orders, asked for by ``caller`` (by default that user)."""
    caller = caller or Caller(user_id=user_id, email=f"{user_id}@example.com", is_staff=False)
    event = api_event("api-orders-list", path_params={"user_id": user_id}, query=query, caller=caller)
    return orders.http(orders_api.handler, event)


def test_listing_is_newest_first_and_stable_when_orders_arrive_between_pages(
    runtimes: dict[str, ServiceRuntime], ada: Caller
) -> None:
    orders = runtimes["orders"]
    placed = [place(orders, ada, items=[{"sku": f"S{i}", "quantity": 1}]).body["order_id"] for i in range(5)]

    first = list_page(orders, ada.user_id, limit="2")
    place(orders, ada)  # a new order between two page requests
    second = list_page(orders, ada.user_id, limit="2", cursor=first.body["next_cursor"])
    third = list_page(orders, ada.user_id, limit="2", cursor=second.body["next_cursor"])

    seen = [o["order_id"] for page in (first, second, third) for o in page.body["orders"]]
    assert seen == list(reversed(placed))
    assert third.body["next_cursor"] is None
    assert list_page(orders, "someone-else").body == {"orders": [], "next_cursor": None}
    assert list_page(orders, "someone-else", GRACE).body == {"orders": [], "next_cursor": None}


@pytest.mark.parametrize(
    "query", [{"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"cursor": "not-a-cursor"}, {"cursor": "e30"}]
)
def test_bad_limit_or_cursor_is_422(runtimes: dict[str, ServiceRuntime], query: dict[str, str]) -> None:
    event = api_event("api-orders-list", query=query)
    response = runtimes["orders"].http(orders_api.handler, event)
    assert response.status == 422
    assert response.body["code"] == "validation_error"


def cursor_of(content: dict[str, Any]) -> str:
    """A cursor in the format the API issues: unpadded URL-safe base64 of compact JSON."""
    raw = json.dumps(content, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_paging_through_25_orders_yields_each_once_newest_first(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient, ada: Caller
) -> None:
    orders = runtimes["orders"]
    user_id = ada.user_id
    for i in range(25):
        place(orders, ada, items=[{"sku": f"S{i}", "quantity": 1}])
    collection = orders_db(mongo_client, orders)["orders"]
    # Orders placed in the same millisecond tie on created_at: make ties straddle page boundaries.
    ids = [document["_id"] for document in collection.find({}, {"_id": 1}).sort("created_at", -1)]
    tied_at = collection.find_one({"_id": ids[10]})["created_at"]
    collection.update_many({"_id": {"$in": ids[8:13]}}, {"$set": {"created_at": tied_at}})
    newest_first = [
        document["_id"] for document in collection.find({}, {"_id": 1}).sort([("created_at", -1), ("_id", -1)])
    ]

    pages = [list_page(orders, user_id, limit="10")]
    while pages[-1].body["next_cursor"]:
        pages.append(list_page(orders, user_id, limit="10", cursor=pages[-1].body["next_cursor"]))

    assert [len(page.body["orders"]) for page in pages] == [10, 10, 5]
    assert [order["order_id"] for page in pages for order in page.body["orders"]] == newest_first


def test_cursors_the_server_did_not_issue_are_422(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, ada: Caller
) -> None:
    orders = runtimes["orders"]
    user_id = ada.user_id
    for _ in range(3):
        place(orders, ada)
    first = list_page(orders, user_id, limit="1").body
    issued = first["next_cursor"]
    last = first["orders"][0]
    bob = register_user(runtimes, aws, customer("bob"))
    other_user = bob.user_id
    place(orders, bob)
    others_cursor = list_page(orders, other_user, limit="1").body["orders"][0]

    forged = [
        cursor_of({"t": "0001-01-01T00:00:00+05:00", "id": last["order_id"]}),
        cursor_of({"t": "9999-12-31T23:59:59-05:00", "id": last["order_id"]}),
        cursor_of({"t": "0001-01-01T00:00:00+05:00", "id": "no-such-order"}),
        cursor_of({"t": "9999-12-31T23:59:59-05:00", "id": "no-such-order"}),
        cursor_of({"t": "2026-01-01T00:00:00Z", "id": last["order_id"]}),
        cursor_of({"t": last["created_at"], "id": "no-such-order"}),
        cursor_of({"t": last["created_at"], "id": {"$gt": ""}}),
        cursor_of({"t": others_cursor["created_at"], "id": others_cursor["order_id"]}),  # another user's order
        cursor_of({"t": last["created_at"]}),
        issued[:-2],
        "!!!",
    ]
    for cursor in forged:
        response = list_page(orders, user_id, limit="1", cursor=cursor)
        assert (response.status, response.body["code"], cursor) == (422, "validation_error", cursor)
    assert list_page(orders, other_user, cursor=issued).status == 422  # a cursor is its user's only
    assert list_page(orders, user_id, limit="1", cursor=issued).status == 200


def cancel(orders: ServiceRuntime, order_id: str, caller: Caller = ADA) -> Response:
    return orders.http(
        orders_api.handler, api_event("api-orders-cancel", path_params={"order_id": order_id}, caller=caller)
    )


def test_cancel_pending_order_then_cancel_again_is_a_no_op(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, ada: Caller
) -> None:
    order = place(runtimes["orders"], ada).body
    received_events(aws.queue_urls["inventory"])

    first = cancel(runtimes["orders"], order["order_id"])
    again = cancel(runtimes["orders"], order["order_id"])

    assert first.status == again.status == 200
    assert first.body["status"] == again.body["status"] == "CANCELLED"
    assert [entry["status"] for entry in again.body["history"]] == ["PENDING", "CANCELLED"]
    [event] = received_events(aws.queue_urls["inventory"])
    assert event["event_type"] == "OrderCancelled"
    assert event["data"] == {"order_id": order["order_id"], "user_id": ada.user_id, "items": ITEMS}


def test_cancel_unknown_order_is_404(runtimes: dict[str, ServiceRuntime]) -> None:
    assert cancel(runtimes["orders"], "nope").status == 404


def test_outbox_relay_publishes_what_a_failed_publish_left_behind(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, ada: Caller
) -> None:
    orders = runtimes["orders"]
    publisher = orders_api.service().outbox._publisher
    with mock.patch.object(publisher, "publish", side_effect=RuntimeError("SNS is down")):
        created = place(orders, ada)
    assert created.status == 201  # the order and its event are safe in MongoDB
    assert received_events(aws.queue_urls["inventory"]) == []
    collection = orders_db(mongo_client, orders)["orders"]
    stored = collection.find_one({"_id": created.body["order_id"]})
    assert [entry["event_type"] for entry in stored["pending_events"]] == ["OrderPlaced"]

    # The relay leaves events younger than 30 s to the request that wrote them; age this one.
    collection.update_one(
        {"_id": created.body["order_id"]},
        {"$set": {"pending_events.0.recorded_at": datetime.now(UTC) - timedelta(minutes=1)}},
    )
    result = orders.invoke(relay.handler, json.loads(json.dumps({"detail": {}})))

    assert result == {"published": 1}
    [event] = received_events(aws.queue_urls["inventory"])
    assert event["event_type"] == "OrderPlaced"
    assert event["data"]["order_id"] == created.body["order_id"]
    assert collection.find_one({"_id": created.body["order_id"]})["pending_events"] == []
