"""The orders SQS consumer: user projection, the total from inventory, confirmation or rejection
on the payment's outcome, the payment status, guards, duplicates, reordering and poison records."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any
from unittest import mock

from pymongo import MongoClient
from pymongo.errors import AutoReconnect

from orders import api as orders_api
from orders import consumer as orders_consumer
from shop_common.events import PaymentSucceededData
from tests.conftest import AwsResources
from tests.integration.test_orders_api import ITEMS, cancel, place, register_user
from tests.support import ADA, ServiceRuntime, api_event, envelope, failed_ids, received_events, sample_event, sqs_batch


def inventory_event(event_type: str, data: dict[str, Any]) -> str:
    return envelope(event_type, "inventory", data, "corr-saga")


def reserved(order_id: str, total: int = 5199) -> str:
    lines = [
        {"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 2500},
        {"sku": "PEN-7", "quantity": 1, "unit_price_cents": 199},
    ]
    return inventory_event("InventoryReserved", {"order_id": order_id, "lines": lines, "total_cents": total})


def rejected(order_id: str) -> str:
    return inventory_event(
        "InventoryRejected",
        {
            "order_id": order_id,
            "reason": "Not enough stock for PEN-7.",
            "unavailable": [{"sku": "PEN-7", "requested": 1, "available": 0}],
        },
    )


def payment_event(event_type: str, data: dict[str, Any]) -> str:
    return envelope(event_type, "payments", data, "corr-pay")


def paid(order_id: str, amount: int = 5199) -> str:
    data = {"order_id": order_id, "payment_id": "pi_1", "amount_cents": amount, "currency": "usd"}
    return payment_event("PaymentSucceeded", data)


def declined(order_id: str) -> str:
    data = {"order_id": order_id, "reason": "Your card was declined.", "decline_code": "card_declined"}
    return payment_event("PaymentFailed", data)


def refunded(order_id: str, amount: int = 5199) -> str:
    data = {"order_id": order_id, "refund_id": "re_1", "amount_cents": amount, "currency": "usd"}
    return payment_event("PaymentRefunded", data)


def published_types(aws: AwsResources) -> list[str]:
    return [event["event_type"] for event in received_events(aws.queue_urls["tap"])]


def consume(orders: ServiceRuntime, *bodies: str) -> list[str]:
    event = sqs_batch("sqs-orders-batch", list(bodies))
    return failed_ids(orders.invoke(orders_consumer.handler, event))


def test_sample_batch_is_accepted_as_is(runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient) -> None:
    """events/sqs-orders-batch.json (for `sam local invoke -e`): the user is learnt; the two
    inventory answers name an order this fresh database does not have, so they fail (retry)."""
    event = sample_event("sqs-orders-batch")
    response = runtimes["orders"].invoke(orders_consumer.handler, event)
    assert failed_ids(response) == [record["messageId"] for record in event["Records"][1:]]
    known = mongo_client[runtimes["orders"].env["MONGODB_DATABASE"]]["known_users"]
    assert known.find_one({"_id": "3f2b6c1e-8a4d-4e57-9d0a-1b2c3d4e5f60"}) is not None


def test_the_reservation_records_the_total_and_the_payment_confirms_once_each_delivered_twice(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    orders = runtimes["orders"]
    order = place(orders, register_user(runtimes, aws)).body
    received_events(aws.queue_urls["tap"])

    assert consume(orders, reserved(order["order_id"]), reserved(order["order_id"], total=1)) == []
    pending = orders.http(*_get(order["order_id"])).body
    assert (pending["status"], pending["total_cents"], pending["payment_status"]) == ("PENDING", 5199, None)
    assert published_types(aws) == []  # the payment decides, not the reservation

    assert consume(orders, paid(order["order_id"])) == []
    assert consume(orders, paid(order["order_id"], amount=1)) == []  # a late duplicate

    confirmed = orders.http(*_get(order["order_id"])).body
    assert (confirmed["status"], confirmed["total_cents"], confirmed["payment_status"]) == (
        "CONFIRMED",
        5199,
        "succeeded",
    )
    assert [entry["status"] for entry in confirmed["history"]] == ["PENDING", "CONFIRMED"]
    [event] = received_events(aws.queue_urls["tap"])
    assert (event["event_type"], event["correlation_id"]) == ("OrderConfirmed", "corr-pay")
    assert event["data"] == {"order_id": order["order_id"], "user_id": ADA.user_id, "total_cents": 5199}


def test_a_payment_overtaking_the_reservation_confirms_with_its_amount(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    orders = runtimes["orders"]
    order = place(orders, register_user(runtimes, aws)).body

    assert consume(orders, paid(order["order_id"]), reserved(order["order_id"], total=1)) == []

    confirmed = orders.http(*_get(order["order_id"])).body
    assert (confirmed["status"], confirmed["total_cents"]) == ("CONFIRMED", 5199)
    [event] = [e for e in received_events(aws.queue_urls["tap"]) if e["event_type"] == "OrderConfirmed"]
    assert event["data"]["total_cents"] == 5199


def test_a_failed_payment_rejects_the_order_with_the_providers_reason(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    orders = runtimes["orders"]
    order = place(orders, register_user(runtimes, aws)).body
    received_events(aws.queue_urls["tap"])

    assert consume(orders, reserved(order["order_id"]), declined(order["order_id"]), declined(order["order_id"])) == []
    assert consume(orders, paid(order["order_id"])) == []  # cannot resurrect a rejected order

    rejected = orders.http(*_get(order["order_id"])).body
    reason = "The payment failed: Your card was declined."
    assert (rejected["status"], rejected["reason"], rejected["payment_status"]) == ("REJECTED", reason, "failed")
    assert [entry["status"] for entry in rejected["history"]] == ["PENDING", "REJECTED"]
    [event] = received_events(aws.queue_urls["tap"])
    assert event["event_type"] == "OrderRejected"
    assert event["data"] == {"order_id": order["order_id"], "user_id": ADA.user_id, "reason": reason}
    refused = cancel(orders, order["order_id"])
    assert (refused.status, refused.body["code"]) == (409, "not_cancellable")


def test_a_cancelled_order_records_its_payment_and_refund_in_any_order_and_stays_cancelled(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    orders = runtimes["orders"]
    order_id = place(orders, register_user(runtimes, aws)).body["order_id"]
    assert cancel(orders, order_id).body["status"] == "CANCELLED"
    received_events(aws.queue_urls["tap"])

    assert consume(orders, refunded(order_id)) == []  # the refund overtook its charge
    assert orders.http(*_get(order_id)).body["payment_status"] == "refunded"
    assert consume(orders, paid(order_id), reserved(order_id), refunded(order_id)) == []

    stored = orders.http(*_get(order_id)).body
    assert (stored["status"], stored["payment_status"], stored["total_cents"]) == ("CANCELLED", "refunded", 5199)
    assert [entry["status"] for entry in stored["history"]] == ["PENDING", "CANCELLED"]
    assert published_types(aws) == []  # no OrderConfirmed, and no second OrderCancelled


def test_a_refund_after_the_confirmed_order_was_cancelled_marks_it_refunded(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    orders = runtimes["orders"]
    order_id = place(orders, register_user(runtimes, aws)).body["order_id"]
    assert consume(orders, reserved(order_id), paid(order_id)) == []
    assert cancel(orders, order_id).body["payment_status"] == "succeeded"

    assert consume(orders, refunded(order_id), paid(order_id)) == []

    stored = orders.http(*_get(order_id)).body
    assert (stored["status"], stored["payment_status"]) == ("CANCELLED", "refunded")
    assert [entry["status"] for entry in stored["history"]] == ["PENDING", "CONFIRMED", "CANCELLED"]


def test_rejection_rejects_with_reason_and_cannot_be_cancelled(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    orders = runtimes["orders"]
    order = place(orders, register_user(runtimes, aws)).body

    assert consume(orders, rejected(order["order_id"])) == []
    assert consume(orders, reserved(order["order_id"])) == []  # cannot resurrect a rejected order

    after = orders.http(*_get(order["order_id"])).body
    assert (after["status"], after["reason"]) == ("REJECTED", "Not enough stock for PEN-7.")
    refused = cancel(orders, order["order_id"])
    assert (refused.status, refused.body["code"]) == (409, "not_cancellable")


def test_reservation_for_a_cancelled_order_leaves_it_cancelled(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    orders = runtimes["orders"]
    order = place(orders, register_user(runtimes, aws)).body
    cancel(orders, order["order_id"])
    received_events(aws.queue_urls["inventory"])

    assert consume(orders, reserved(order["order_id"])) == []

    assert orders.http(*_get(order["order_id"])).body["status"] == "CANCELLED"
    # No second OrderCancelled: the first one already tells inventory to release the stock.
    assert received_events(aws.queue_urls["inventory"]) == []


def test_confirmed_order_can_be_cancelled(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> None:
    orders = runtimes["orders"]
    order = place(orders, register_user(runtimes, aws)).body
    assert consume(orders, reserved(order["order_id"]), paid(order["order_id"])) == []
    received_events(aws.queue_urls["inventory"])

    response = cancel(orders, order["order_id"])

    assert (response.body["status"], response.body["payment_status"]) == ("CANCELLED", "succeeded")
    assert [entry["status"] for entry in response.body["history"]] == ["PENDING", "CONFIRMED", "CANCELLED"]
    [event] = received_events(aws.queue_urls["inventory"])
    assert (event["event_type"], event["data"]["items"]) == ("OrderCancelled", ITEMS)


def test_poison_records_fail_alone(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> None:
    orders = runtimes["orders"]
    order = place(orders, register_user(runtimes, aws)).body
    good = paid(order["order_id"])
    version_2 = json.loads(paid(order["order_id"]))
    version_2["event_version"] = 2
    missing_field = json.loads(paid(order["order_id"]))
    del missing_field["data"]["amount_cents"]
    unknown_type = json.loads(paid(order["order_id"]))
    unknown_type["event_type"] = "PaymentTeleported"
    poison = ["{not json", json.dumps(version_2), json.dumps(missing_field), json.dumps(unknown_type)]

    event = sqs_batch("sqs-orders-batch", [poison[0], good, *poison[1:]])
    failures = failed_ids(runtimes["orders"].invoke(orders_consumer.handler, event))

    ids = [record["messageId"] for record in event["Records"]]
    assert failures == [ids[0], *ids[2:]]
    assert orders.http(*_get(order["order_id"])).body["status"] == "CONFIRMED"


def _get(order_id: str) -> tuple[Any, dict[str, Any]]:
    return orders_api.handler, api_event("api-orders-get", path_params={"order_id": order_id})


def test_a_transient_mongodb_failure_retries_the_record_instead_of_losing_it(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    orders = runtimes["orders"]
    order = place(orders, register_user(runtimes, aws)).body
    message = paid(order["order_id"])
    repository = orders_api.service().repository

    with mock.patch.object(repository, "apply", side_effect=AutoReconnect("primary stepped down")):
        assert len(consume(orders, message)) == 1  # reported failed: SQS delivers it again later
    assert orders.http(*_get(order["order_id"])).body["status"] == "PENDING"

    assert consume(orders, message) == []  # the redelivery
    assert orders.http(*_get(order["order_id"])).body["status"] == "CONFIRMED"


def test_a_cancel_decided_before_a_confirm_landed_keeps_the_confirmation(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    """The cancel reads PENDING, the confirm lands, then the cancel writes: it must notice
    the order changed since it read it, re-read, and cancel the confirmed order."""
    orders = runtimes["orders"]
    order = place(orders, register_user(runtimes, aws)).body
    service = orders_api.service()
    read_order = service.repository.get
    confirm_landed = False

    def read_then_let_the_confirm_land(order_id: str) -> Any:
        nonlocal confirm_landed
        read = read_order(order_id)
        if not confirm_landed:
            confirm_landed = True
            assert consume(orders, paid(order_id)) == []
        return read

    with mock.patch.object(service.repository, "get", side_effect=read_then_let_the_confirm_land):
        cancelled = cancel(orders, order["order_id"])

    stored = orders.http(*_get(order["order_id"])).body
    assert cancelled.status == 200
    assert cancelled.body == stored
    assert (stored["status"], stored["total_cents"], stored["payment_status"]) == ("CANCELLED", 5199, "succeeded")
    assert [entry["status"] for entry in stored["history"]] == ["PENDING", "CONFIRMED", "CANCELLED"]
    published = published_types(aws)
    assert (published.count("OrderConfirmed"), published.count("OrderCancelled")) == (1, 1)


def test_an_order_stored_before_versions_existed_still_moves_through_its_lifecycle(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    orders = runtimes["orders"]
    order = place(orders, register_user(runtimes, aws)).body
    collection = mongo_client[orders.env["MONGODB_DATABASE"]]["orders"]
    collection.update_one({"_id": order["order_id"]}, {"$unset": {"version": ""}})

    assert consume(orders, reserved(order["order_id"])) == []
    assert cancel(orders, order["order_id"]).body["status"] == "CANCELLED"

    stored = collection.find_one({"_id": order["order_id"]})
    assert stored is not None
    assert (stored["status"], stored["total_cents"], stored["version"]) == ("CANCELLED", 5199, 2)


def test_confirms_and_cancels_racing_in_threads_never_lose_a_write(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    orders = runtimes["orders"]
    ada = register_user(runtimes, aws)
    order_ids = [place(orders, ada).body["order_id"] for _ in range(12)]
    service = orders_api.service()
    start = threading.Barrier(2 * len(order_ids))

    def confirm(order_id: str) -> None:
        start.wait()
        service.record_payment(PaymentSucceededData.model_validate(json.loads(paid(order_id))["data"]), "c")

    def cancel_it(order_id: str) -> None:
        start.wait()
        service.cancel(ada, order_id, "c")

    run_in_threads([(work, order_id) for order_id in order_ids for work in (confirm, cancel_it)])

    for order_id in order_ids:
        stored = orders.http(*_get(order_id)).body
        statuses = [entry["status"] for entry in stored["history"]]
        assert statuses in (["PENDING", "CANCELLED"], ["PENDING", "CONFIRMED", "CANCELLED"])
        assert stored["total_cents"] == (5199 if "CONFIRMED" in statuses else None)
        assert stored["payment_status"] == "succeeded"  # recorded whichever landed first


def run_in_threads(calls: list[tuple[Callable[[str], None], str]]) -> None:
    errors: list[BaseException] = []

    def guarded(work: Callable[[str], None], order_id: str) -> None:
        try:
            work(order_id)
        except BaseException as error:  # surfaced below, so a thread cannot fail silently
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
