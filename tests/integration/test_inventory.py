"""Inventory: stock administration over HTTP and the reservation invariants of the saga.

Stock never goes below zero, an order is reserved at most once and all-or-nothing, and the
stock of an order cancelled or whose payment failed comes back exactly once, whatever the order
of delivery, and however many of the two arrive.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from pymongo import MongoClient

from inventory import api as inventory_api
from inventory import consumer as inventory_consumer
from inventory import relay as inventory_relay
from tests.conftest import AwsResources
from tests.support import (
    FakeLambdaContext,
    ServiceRuntime,
    api_event,
    envelope,
    failed_ids,
    received_events,
    sample_event,
    sqs_batch,
)


def put(inventory: ServiceRuntime, sku: str, available: int, price: int = 2500, name: str = "Book") -> Any:
    body = {"name": name, "unit_price_cents": price, "available": available}
    return inventory.http(inventory_api.handler, api_event("api-inventory-put", body=body, path_params={"sku": sku}))


def get(inventory: ServiceRuntime, sku: str) -> Any:
    return inventory.http(inventory_api.handler, api_event("api-inventory-get", path_params={"sku": sku}))


def order_event(event_type: str, order_id: str, items: list[dict[str, Any]]) -> str:
    return envelope(
        event_type,
        "orders",
        {"order_id": order_id, "user_id": "u1", "items": items, "payment_method": "pm_card_visa"},
        "corr-inv",
    )


def placed(order_id: str, items: list[dict[str, Any]]) -> str:
    return order_event("OrderPlaced", order_id, items)


def cancelled(order_id: str, items: list[dict[str, Any]]) -> str:
    return order_event("OrderCancelled", order_id, items)


def payment_failed(order_id: str) -> str:
    data = {"order_id": order_id, "reason": "Your card was declined.", "decline_code": "card_declined"}
    return envelope("PaymentFailed", "payments", data, "corr-inv")


def consume(inventory: ServiceRuntime, *bodies: str) -> list[str]:
    return failed_ids(inventory.invoke(inventory_consumer.handler, sqs_batch("sqs-inventory-batch", list(bodies))))


def stock(inventory: ServiceRuntime, sku: str) -> tuple[int, int]:
    product = get(inventory, sku).body
    return product["available"], product["reserved"]


# --- HTTP ---


def test_put_then_get_product(runtimes: dict[str, ServiceRuntime]) -> None:
    inventory = runtimes["inventory"]
    response = inventory.http(inventory_api.handler, api_event("api-inventory-put"))
    assert response.status == 200
    expected = {
        "sku": "BOOK-1",
        "name": "The Analytical Engine",
        "unit_price_cents": 2500,
        "available": 10,
        "reserved": 0,
    }
    assert response.body == expected
    assert inventory.http(inventory_api.handler, api_event("api-inventory-get")).body == expected


def test_put_keeps_reserved_stock(runtimes: dict[str, ServiceRuntime]) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 5)
    consume(inventory, placed("o1", [{"sku": "BOOK-1", "quantity": 2}]))
    assert put(inventory, "BOOK-1", 7, price=3000).body == {
        "sku": "BOOK-1",
        "name": "Book",
        "unit_price_cents": 3000,
        "available": 7,
        "reserved": 2,
    }


def test_unknown_product_is_404(runtimes: dict[str, ServiceRuntime]) -> None:
    response = get(runtimes["inventory"], "NOPE")
    assert (response.status, response.body["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("sku", "raw_body", "status"),
    [
        ("BOOK-1", json.dumps({"name": "B", "unit_price_cents": -1, "available": 1}), 422),
        ("BOOK-1", json.dumps({"name": "B", "unit_price_cents": 1, "available": -1}), 422),
        ("BOOK-1", json.dumps({"name": "B", "unit_price_cents": 1.5, "available": 1}), 422),
        ("BOOK-1", json.dumps({"name": "B", "unit_price_cents": "1", "available": 1}), 422),
        ("BOOK-1", json.dumps({"name": "", "unit_price_cents": 1, "available": 1}), 422),
        ("BOOK-1", json.dumps({"name": "B", "unit_price_cents": 1, "available": 1, "reserved": 0}), 422),
        ("BOOK-1", json.dumps({"name": {"$gt": ""}, "unit_price_cents": 1, "available": 1}), 422),
        ("BOOK-1", json.dumps({"name": "B", "unit_price_cents": {"$inc": 1}, "available": 1}), 422),
        ("BAD SKU", json.dumps({"name": "B", "unit_price_cents": 1, "available": 1}), 404),  # not a sku: names nothing
        ("S" * 65, json.dumps({"name": "B", "unit_price_cents": 1, "available": 1}), 404),  # not a sku: names nothing
        ("BOOK-1", "{oops", 400),
        ("BOOK-1", json.dumps({"name": "B" * 70_000, "unit_price_cents": 1, "available": 1}), 413),
    ],
)
def test_bad_product_updates_are_4xx_and_change_nothing(
    runtimes: dict[str, ServiceRuntime], sku: str, raw_body: str, status: int
) -> None:
    inventory = runtimes["inventory"]
    event = api_event("api-inventory-put", raw_body=raw_body, path_params={"sku": sku})
    response = inventory.http(inventory_api.handler, event)
    assert response.status == status
    assert set(response.body) >= {"code", "message"}
    assert get(inventory, "BOOK-1").status == 404


NOT_AN_INTEGER = [1.5, "1", True]


@pytest.mark.parametrize(
    ("field", "value"),
    [("unit_price_cents", value) for value in [2**63, 2**31, -1, 100_000_001, *NOT_AN_INTEGER]]
    + [("available", value) for value in [2**63, 2**31, -1, 1_000_000_001, *NOT_AN_INTEGER]],
)
def test_prices_and_stock_outside_the_contracts_bounds_are_422(
    runtimes: dict[str, ServiceRuntime], field: str, value: Any
) -> None:
    inventory = runtimes["inventory"]
    body = {"name": "B", "unit_price_cents": 1, "available": 1, field: value}
    response = inventory.http(inventory_api.handler, api_event("api-inventory-put", body=body))
    assert (response.status, response.body["code"]) == (422, "validation_error")
    assert get(inventory, "BOOK-1").status == 404


def test_prices_and_stock_at_the_contracts_maxima_are_stored(runtimes: dict[str, ServiceRuntime]) -> None:
    response = put(runtimes["inventory"], "BOOK-1", available=1_000_000_000, price=100_000_000)
    assert response.status == 200
    assert (response.body["unit_price_cents"], response.body["available"]) == (100_000_000, 1_000_000_000)


# --- reservations ---


def test_order_placed_reserves_every_line_and_prices_it(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 10, price=2500)
    put(inventory, "PEN-7", 3, price=199)

    assert consume(inventory, placed("o1", [{"sku": "BOOK-1", "quantity": 2}, {"sku": "PEN-7", "quantity": 1}])) == []

    assert stock(inventory, "BOOK-1") == (8, 2)
    assert stock(inventory, "PEN-7") == (2, 1)
    [event] = received_events(aws.queue_urls["orders"])
    assert event["event_type"] == "InventoryReserved"
    assert (event["source"], event["correlation_id"]) == ("inventory", "corr-inv")
    assert event["data"] == {
        "order_id": "o1",
        "lines": [
            {"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 2500},
            {"sku": "PEN-7", "quantity": 1, "unit_price_cents": 199},
        ],
        "total_cents": 5199,
    }


def test_one_short_line_rejects_the_whole_order_and_touches_no_stock(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 10)
    put(inventory, "PEN-7", 1)
    items = [{"sku": "BOOK-1", "quantity": 2}, {"sku": "PEN-7", "quantity": 5}, {"sku": "GHOST", "quantity": 1}]

    assert consume(inventory, placed("o2", items)) == []

    assert stock(inventory, "BOOK-1") == (10, 0)
    assert stock(inventory, "PEN-7") == (1, 0)
    [event] = received_events(aws.queue_urls["orders"])
    assert event["event_type"] == "InventoryRejected"
    assert event["data"]["unavailable"] == [
        {"sku": "PEN-7", "requested": 5, "available": 1},
        {"sku": "GHOST", "requested": 1, "available": 0},
    ]
    assert "PEN-7" in event["data"]["reason"]
    assert "GHOST" in event["data"]["reason"]


def test_the_same_order_placed_twice_is_reserved_once(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 10)
    message = placed("o3", [{"sku": "BOOK-1", "quantity": 4}])

    assert consume(inventory, message) == []
    assert consume(inventory, message, placed("o3", [{"sku": "BOOK-1", "quantity": 4}])) == []

    assert stock(inventory, "BOOK-1") == (6, 4)
    assert [e["event_type"] for e in received_events(aws.queue_urls["orders"])] == ["InventoryReserved"]


def test_cancel_returns_stock_exactly_once(runtimes: dict[str, ServiceRuntime]) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 10)
    items = [{"sku": "BOOK-1", "quantity": 4}]
    consume(inventory, placed("o4", items))

    assert consume(inventory, cancelled("o4", items)) == []
    assert consume(inventory, cancelled("o4", items), cancelled("o4", items)) == []
    assert consume(inventory, placed("o4", items)) == []  # a late redelivery of the placement

    assert stock(inventory, "BOOK-1") == (10, 0)


def test_cancel_that_overtakes_its_order_prevents_the_reservation(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 10)
    items = [{"sku": "BOOK-1", "quantity": 4}]

    assert consume(inventory, cancelled("o5", items)) == []
    assert consume(inventory, placed("o5", items)) == []

    assert stock(inventory, "BOOK-1") == (10, 0)
    assert received_events(aws.queue_urls["orders"]) == []


def test_cancel_of_a_rejected_order_returns_nothing(runtimes: dict[str, ServiceRuntime]) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 1)
    consume(inventory, placed("o6", [{"sku": "BOOK-1", "quantity": 5}]))
    consume(inventory, cancelled("o6", [{"sku": "BOOK-1", "quantity": 5}]))
    assert stock(inventory, "BOOK-1") == (1, 0)


def reservation_status(inventory: ServiceRuntime, mongo_client: MongoClient, order_id: str) -> str:
    document = mongo_client[inventory.env["MONGODB_DATABASE"]]["reservations"].find_one({"_id": order_id})
    assert document is not None
    return str(document["status"])


def test_a_failed_payment_returns_the_stock_once_and_a_later_cancel_returns_nothing(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient
) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 10)
    items = [{"sku": "BOOK-1", "quantity": 4}]
    assert consume(inventory, placed("p1", items)) == []

    assert consume(inventory, payment_failed("p1"), payment_failed("p1")) == []
    assert stock(inventory, "BOOK-1") == (10, 0)
    assert consume(inventory, cancelled("p1", items), placed("p1", items)) == []

    assert stock(inventory, "BOOK-1") == (10, 0)
    assert reservation_status(inventory, mongo_client, "p1") == "PAYMENT_FAILED"


def test_a_failed_payment_after_a_cancel_returns_nothing(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient
) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 10)
    items = [{"sku": "BOOK-1", "quantity": 4}]
    assert consume(inventory, placed("p2", items), cancelled("p2", items)) == []

    assert consume(inventory, payment_failed("p2")) == []

    assert stock(inventory, "BOOK-1") == (10, 0)
    assert reservation_status(inventory, mongo_client, "p2") == "CANCELLED"


def test_a_failed_payment_that_overtakes_its_order_prevents_the_reservation(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 10)
    items = [{"sku": "BOOK-1", "quantity": 4}]

    assert consume(inventory, payment_failed("p3")) == []
    assert consume(inventory, placed("p3", items), cancelled("p3", items)) == []

    assert stock(inventory, "BOOK-1") == (10, 0)
    assert reservation_status(inventory, mongo_client, "p3") == "PAYMENT_FAILED"
    assert received_events(aws.queue_urls["orders"]) == []


def rejected(order_id: str, reason: str = "The order could not be completed in time.") -> str:
    return envelope(
        "OrderRejected", "orders", {"order_id": order_id, "user_id": "user-1", "reason": reason}, "corr-inv"
    )


def test_an_order_rejected_at_its_deadline_returns_its_stock_once(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient
) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 10)
    items = [{"sku": "BOOK-1", "quantity": 4}]
    assert consume(inventory, placed("r1", items)) == []

    assert consume(inventory, rejected("r1"), rejected("r1")) == []
    assert consume(inventory, cancelled("r1", items), payment_failed("r1")) == []

    assert stock(inventory, "BOOK-1") == (10, 0)
    assert reservation_status(inventory, mongo_client, "r1") == "ORDER_REJECTED"


def test_an_order_rejected_before_inventory_heard_of_it_is_never_reserved(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 10)

    assert consume(inventory, rejected("r2"), placed("r2", [{"sku": "BOOK-1", "quantity": 4}])) == []

    assert stock(inventory, "BOOK-1") == (10, 0)
    assert reservation_status(inventory, mongo_client, "r2") == "ORDER_REJECTED"
    assert received_events(aws.queue_urls["orders"]) == []


def test_the_rejection_of_an_order_inventory_rejected_changes_nothing(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient
) -> None:
    """Inventory's own InventoryRejected comes back to it as the order's OrderRejected."""
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 1)
    assert consume(inventory, placed("r3", [{"sku": "BOOK-1", "quantity": 5}])) == []

    assert consume(inventory, rejected("r3", "BOOK-1: 5 requested, 1 available")) == []

    assert stock(inventory, "BOOK-1") == (1, 0)
    assert reservation_status(inventory, mongo_client, "r3") == "REJECTED"


def test_a_failed_payment_and_a_cancel_racing_return_the_stock_once(runtimes: dict[str, ServiceRuntime]) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 100)
    items = [{"sku": "BOOK-1", "quantity": 3}]
    order_ids = [f"race-{index}" for index in range(6)]
    assert consume(inventory, *(placed(order_id, items) for order_id in order_ids)) == []
    assert stock(inventory, "BOOK-1") == (82, 18)
    releases = [message for order_id in order_ids for message in (payment_failed(order_id), cancelled(order_id, items))]
    start = threading.Barrier(len(releases))

    def deliver(index: int) -> None:
        start.wait()
        event = sqs_batch("sqs-inventory-batch", [releases[index]])
        assert failed_ids(inventory_consumer.handler(event, FakeLambdaContext())) == []

    with mock.patch.dict("os.environ", inventory.env):
        run_in_threads(len(releases), deliver)

    assert stock(inventory, "BOOK-1") == (100, 0)


def run_in_threads(count: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            work(index)
        except BaseException as error:  # surfaced below, so a thread cannot fail silently
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_concurrent_orders_never_oversell(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    """8 threads x 4 orders of 1 or 2 units (48 wanted) against a stock of 10."""
    inventory = runtimes["inventory"]
    put(inventory, "HOT", 10, price=100)
    threads, orders_per_thread = 8, 4

    def place_orders(thread: int) -> None:
        for index in range(orders_per_thread):
            quantity = 1 + (thread + index) % 2
            event = sqs_batch(
                "sqs-inventory-batch", [placed(f"t{thread}-o{index}", [{"sku": "HOT", "quantity": quantity}])]
            )
            response = inventory_consumer.handler(event, FakeLambdaContext())
            assert failed_ids(response) == []

    with mock.patch.dict("os.environ", inventory.env):
        run_in_threads(threads, place_orders)

    available, reserved = stock(inventory, "HOT")
    reservations = list(mongo_client[inventory.env["MONGODB_DATABASE"]]["reservations"].find())
    reserved_lines = sum(line["quantity"] for r in reservations if r["status"] == "RESERVED" for line in r["lines"])
    assert (available, reserved) == (0, 10)
    assert reserved_lines == 10
    assert len(reservations) == threads * orders_per_thread
    outcomes = [e["event_type"] for e in received_events(aws.queue_urls["orders"])]
    assert len(outcomes) == threads * orders_per_thread
    assert outcomes.count("InventoryReserved") == sum(1 for r in reservations if r["status"] == "RESERVED")


def test_the_same_order_from_many_threads_is_reserved_once(runtimes: dict[str, ServiceRuntime]) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 100)
    message = placed("dup", [{"sku": "BOOK-1", "quantity": 3}])

    def deliver(_: int) -> None:
        response = inventory_consumer.handler(sqs_batch("sqs-inventory-batch", [message]), FakeLambdaContext())
        assert failed_ids(response) == []

    with mock.patch.dict("os.environ", inventory.env):
        run_in_threads(8, deliver)

    assert stock(inventory, "BOOK-1") == (97, 3)


def test_poison_records_fail_alone(runtimes: dict[str, ServiceRuntime]) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 10)
    good = placed("good", [{"sku": "BOOK-1", "quantity": 1}])
    version_2 = {**json.loads(good), "event_version": 2}
    unknown = {**json.loads(good), "event_type": "OrderShipped"}
    missing = json.loads(good)
    del missing["data"]["items"]
    bodies = ["not json", json.dumps(version_2), good, json.dumps(unknown), json.dumps(missing)]
    event = sqs_batch("sqs-inventory-batch", bodies)

    failures = failed_ids(inventory.invoke(inventory_consumer.handler, event))

    ids = [record["messageId"] for record in event["Records"]]
    assert failures == [ids[0], ids[1], ids[3], ids[4]]
    assert stock(inventory, "BOOK-1") == (9, 1)


def test_sample_batch_places_then_cancels(runtimes: dict[str, ServiceRuntime]) -> None:
    """events/sqs-inventory-batch.json as `sam local invoke -e` would send it."""
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 5)
    put(inventory, "PEN-7", 5, price=199)
    assert failed_ids(inventory.invoke(inventory_consumer.handler, sample_event("sqs-inventory-batch"))) == []
    assert stock(inventory, "BOOK-1") == (3, 2)
    assert stock(inventory, "PEN-7") == (4, 1)


def test_relay_publishes_a_decision_whose_publish_failed(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 10)
    with mock.patch.object(inventory_api.dependencies().outbox._publisher, "publish", side_effect=OSError("down")):
        assert consume(inventory, placed("o7", [{"sku": "BOOK-1", "quantity": 1}])) == []
    assert received_events(aws.queue_urls["orders"]) == []
    reservations = mongo_client[inventory.env["MONGODB_DATABASE"]]["reservations"]
    reservations.update_one(
        {"_id": "o7"}, {"$set": {"pending_events.0.recorded_at": datetime.now(UTC) - timedelta(minutes=2)}}
    )

    assert inventory.invoke(inventory_relay.handler, sample_event("schedule-every-minute")) == {"published": 1}
    assert [e["event_type"] for e in received_events(aws.queue_urls["orders"])] == ["InventoryReserved"]
