"""Orders API and consumer, in-process with the sample events, on the real mongod and moto."""

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
from tests.conftest import AwsResources
from tests.support import ServiceRuntime, api_event, deliver_all, received_events
from users import api as users_api

ITEMS = [{"sku": "BOOK-1", "quantity": 2}, {"sku": "PEN-7", "quantity": 1}]


def register_user(runtimes: dict[str, ServiceRuntime], aws: AwsResources, email: str = "ada@example.com") -> str:
    """Register through the users API and let the orders service learn of it from its queue."""
    user = runtimes["users"].http(users_api.handler, api_event("api-users-create", body={"email": email, "name": "A"}))
    assert user.status == 201
    assert deliver_all(aws.queue_urls["orders"], runtimes["orders"], orders_consumer.handler) == 1
    return str(user.body["user_id"])


def place(orders: ServiceRuntime, user_id: str, items: list[dict[str, Any]] = ITEMS, key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    event = api_event("api-orders-create", body={"user_id": user_id, "items": items, "payment_method": "pm_card_visa"})
    if not key:
        event["headers"].pop("Idempotency-Key")
        event["multiValueHeaders"].pop("Idempotency-Key")
    for name, value in headers.items():
        event["headers"][name] = value
    return orders.http(orders_api.handler, event)


def orders_db(mongo_client: MongoClient, runtime: ServiceRuntime) -> Any:
    return mongo_client[runtime.env["MONGODB_DATABASE"]]


@pytest.fixture
def user_id(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> str:
    return register_user(runtimes, aws)


def test_orders_service_learns_of_users_from_user_registered(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    user_id = register_user(runtimes, aws)
    assert orders_db(mongo_client, runtimes["orders"])["known_users"].find_one({"_id": user_id}) is not None


def test_place_order_is_201_pending_and_announced(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, user_id: str
) -> None:
    response = place(runtimes["orders"], user_id)

    assert response.status == 201
    order = response.body
    assert order["status"] == "PENDING"
    assert order["user_id"] == user_id
    assert order["items"] == ITEMS
    assert order["total_cents"] is None
    assert order["payment_status"] is None
    assert order["reason"] is None
    assert order["created_at"] == order["updated_at"]
    assert [entry["status"] for entry in order["history"]] == ["PENDING"]
    assert response.headers["Location"] == f"/orders/{order['order_id']}"
    [event] = received_events(aws.queue_urls["inventory"])
    assert event["event_type"] == "OrderPlaced"
    assert event["source"] == "orders"
    assert event["correlation_id"] == response.headers["X-Correlation-Id"]
    assert event["data"] == {
        "order_id": order["order_id"],
        "user_id": user_id,
        "items": ITEMS,
        "payment_method": "pm_card_visa",
    }


def test_order_for_unknown_user_is_422_unknown_user(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient
) -> None:
    response = place(runtimes["orders"], "no-such-user")
    assert response.status == 422
    assert response.body["code"] == "unknown_user"
    assert orders_db(mongo_client, runtimes["orders"])["orders"].count_documents({}) == 0


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
        {"items": [{"sku": "A", "quantity": 1}], **PM},
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
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, user_id: str
) -> None:
    first = place(runtimes["orders"], user_id, key="key-1")
    again = place(runtimes["orders"], user_id, key="key-1")

    assert first.status == again.status == 201
    assert again.body == first.body
    assert again.headers["Location"] == first.headers["Location"]
    assert orders_db(mongo_client, runtimes["orders"])["orders"].count_documents({}) == 1
    assert len(received_events(aws.queue_urls["inventory"])) == 1


def test_idempotency_key_reused_with_another_body_is_422(runtimes: dict[str, ServiceRuntime], user_id: str) -> None:
    place(runtimes["orders"], user_id, key="key-2")
    other = place(runtimes["orders"], user_id, items=[{"sku": "BOOK-1", "quantity": 3}], key="key-2")
    assert other.status == 422
    assert other.body["code"] == "idempotency_key_reused"


def test_a_4xx_stores_nothing_under_the_key(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    failed = place(runtimes["orders"], "later-user", key="key-3")
    assert failed.body["code"] == "unknown_user"
    assert orders_db(mongo_client, runtimes["orders"])["idempotency"].count_documents({}) == 0

    user_id = register_user(runtimes, aws)
    retried = place(runtimes["orders"], user_id, key="key-3")
    assert retried.status == 201


def test_idempotency_keys_are_kept_24_hours_with_a_ttl_index(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient, user_id: str
) -> None:
    place(runtimes["orders"], user_id, key="key-4")
    collection = orders_db(mongo_client, runtimes["orders"])["idempotency"]
    [record] = collection.find()
    assert record["status"] == "COMPLETED"
    assert record["expires_at"] - datetime.now(UTC) > timedelta(hours=23, minutes=59)
    ttl = [index for index in collection.list_indexes() if "expireAfterSeconds" in index]
    assert [(dict(index["key"]), index["expireAfterSeconds"]) for index in ttl] == [({"expires_at": 1}, 0)]


def test_same_key_while_the_first_request_runs_is_409_in_flight(
    runtimes: dict[str, ServiceRuntime], user_id: str
) -> None:
    orders = runtimes["orders"]
    place(orders, user_id)  # warm the container so both calls share its dependencies
    inside, release = threading.Event(), threading.Event()
    real_place = orders_api.service().place

    def slow_place(*args: Any, **kwargs: Any) -> Any:
        inside.set()
        release.wait(5)
        return real_place(*args, **kwargs)

    results: list[Any] = []
    with mock.patch.object(orders_api.service(), "place", side_effect=slow_place):
        first = threading.Thread(target=lambda: results.append(place(orders, user_id, key="key-5")))
        first.start()
        assert inside.wait(5)
        concurrent = place(orders, user_id, key="key-5")
        release.set()
        first.join()

    assert concurrent.status == 409
    assert concurrent.body["code"] == "idempotency_key_in_flight"
    assert results[0].status == 201


def test_get_order_and_404(runtimes: dict[str, ServiceRuntime], user_id: str) -> None:
    created = place(runtimes["orders"], user_id).body
    fetched = runtimes["orders"].http(
        orders_api.handler, api_event("api-orders-get", path_params={"order_id": created["order_id"]})
    )
    missing = runtimes["orders"].http(orders_api.handler, api_event("api-orders-get"))
    assert (fetched.status, fetched.body) == (200, created)
    assert (missing.status, missing.body["code"]) == (404, "not_found")


def list_page(orders: ServiceRuntime, user_id: str, **query: str) -> Any:
    return orders.http(orders_api.handler, api_event("api-orders-list", path_params={"user_id": user_id}, query=query))


def test_listing_is_newest_first_and_stable_when_orders_arrive_between_pages(
    runtimes: dict[str, ServiceRuntime], user_id: str
) -> None:
    orders = runtimes["orders"]
    placed = [place(orders, user_id, items=[{"sku": f"S{i}", "quantity": 1}]).body["order_id"] for i in range(5)]

    first = list_page(orders, user_id, limit="2")
    place(orders, user_id)  # a new order between two page requests
    second = list_page(orders, user_id, limit="2", cursor=first.body["next_cursor"])
    third = list_page(orders, user_id, limit="2", cursor=second.body["next_cursor"])

    seen = [o["order_id"] for page in (first, second, third) for o in page.body["orders"]]
    assert seen == list(reversed(placed))
    assert third.body["next_cursor"] is None
    assert list_page(orders, "someone-else").body == {"orders": [], "next_cursor": None}


@pytest.mark.parametrize(
    "query", [{"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"cursor": "not-a-cursor"}, {"cursor": "e30"}]
)
def test_bad_limit_or_cursor_is_422(runtimes: dict[str, ServiceRuntime], query: dict[str, str]) -> None:
    response = list_page(runtimes["orders"], "u1", **query)
    assert response.status == 422
    assert response.body["code"] == "validation_error"


def cursor_of(content: dict[str, Any]) -> str:
    """A cursor in the format the API issues: unpadded URL-safe base64 of compact JSON."""
    raw = json.dumps(content, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_paging_through_25_orders_yields_each_once_newest_first(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient, user_id: str
) -> None:
    orders = runtimes["orders"]
    for i in range(25):
        place(orders, user_id, items=[{"sku": f"S{i}", "quantity": 1}])
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
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, user_id: str
) -> None:
    orders = runtimes["orders"]
    for _ in range(3):
        place(orders, user_id)
    first = list_page(orders, user_id, limit="1").body
    issued = first["next_cursor"]
    last = first["orders"][0]
    other_user = register_user(runtimes, aws, email="bob@example.com")
    place(orders, other_user)
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


def cancel(orders: ServiceRuntime, order_id: str) -> Any:
    return orders.http(orders_api.handler, api_event("api-orders-cancel", path_params={"order_id": order_id}))


def test_cancel_pending_order_then_cancel_again_is_a_no_op(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, user_id: str
) -> None:
    order = place(runtimes["orders"], user_id).body
    received_events(aws.queue_urls["inventory"])

    first = cancel(runtimes["orders"], order["order_id"])
    again = cancel(runtimes["orders"], order["order_id"])

    assert first.status == again.status == 200
    assert first.body["status"] == again.body["status"] == "CANCELLED"
    assert [entry["status"] for entry in again.body["history"]] == ["PENDING", "CANCELLED"]
    [event] = received_events(aws.queue_urls["inventory"])
    assert event["event_type"] == "OrderCancelled"
    assert event["data"] == {"order_id": order["order_id"], "user_id": user_id, "items": ITEMS}


def test_cancel_unknown_order_is_404(runtimes: dict[str, ServiceRuntime]) -> None:
    assert cancel(runtimes["orders"], "nope").status == 404


def test_outbox_relay_publishes_what_a_failed_publish_left_behind(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, user_id: str
) -> None:
    orders = runtimes["orders"]
    publisher = orders_api.service().outbox._publisher
    with mock.patch.object(publisher, "publish", side_effect=RuntimeError("SNS is down")):
        created = place(orders, user_id)
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
