"""Idempotency-Key retries after the first attempt went wrong between storing the order and
completing the key's record: the retry gets the first attempt's order, never a second one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import AutoReconnect

from orders import api as orders_api
from orders import relay
from orders.idempotency import store
from shop_common.identity import Caller
from tests.conftest import AwsResources
from tests.integration.test_orders_api import orders_db, place, register_user
from tests.support import ServiceRuntime, received_events

OTHER_ITEMS = [{"sku": "BOOK-1", "quantity": 3}]


class ContainerKilled(BaseException):
    """Stands for Lambda ending the container (a timeout): no `except Exception` sees it, so
    nothing cleans up after the request, exactly as after a real timeout."""


@pytest.fixture
def ada(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> Caller:
    ada = register_user(runtimes, aws)
    place(runtimes["orders"], ada)  # warm the container: its dependencies exist to be patched
    received_events(aws.queue_urls["inventory"])
    return ada


def collections(mongo_client: MongoClient, runtime: ServiceRuntime) -> tuple[Collection, Collection]:
    database = orders_db(mongo_client, runtime)
    return database["orders"], database["idempotency"]


def expire_in_progress_records(idempotency: Collection) -> None:
    """What the passing of the first attempt's Lambda deadline does to its in-progress record."""
    past_ms = int((datetime.now(UTC) - timedelta(seconds=1)).timestamp() * 1000)
    result = idempotency.update_many({"status": "INPROGRESS"}, {"$set": {"in_progress_expiry_timestamp": past_ms}})
    assert result.modified_count == 1


def the_record(idempotency: Collection) -> dict[str, Any]:
    [record] = idempotency.find()
    return dict(record)


def keyed_orders(orders: Collection, before: set[str]) -> list[dict[str, Any]]:
    return list(orders.find({"_id": {"$nin": list(before)}}))


def test_a_retry_after_the_key_record_failed_to_complete_returns_the_first_order(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, ada: Caller
) -> None:
    orders_runtime = runtimes["orders"]
    orders, idempotency = collections(mongo_client, orders_runtime)
    before = {document["_id"] for document in orders.find({}, {"_id": 1})}

    with mock.patch.object(store, "_update_record", side_effect=AutoReconnect("primary stepped down")):
        first = place(orders_runtime, ada, key="key-complete-fails")
    assert first.status >= 500
    [stored] = keyed_orders(orders, before)
    assert the_record(idempotency)["status"] == "INPROGRESS"

    expire_in_progress_records(idempotency)
    retry = place(orders_runtime, ada, key="key-complete-fails")

    assert retry.status == 201
    assert retry.body["order_id"] == stored["_id"]
    assert retry.headers["Location"] == f"/dev/orders/{stored['_id']}"
    assert [document["_id"] for document in keyed_orders(orders, before)] == [stored["_id"]]
    assert the_record(idempotency)["status"] == "COMPLETED"
    [placed] = received_events(aws.queue_urls["inventory"])  # the first attempt published it; nobody again
    assert placed["data"]["order_id"] == stored["_id"]
    assert place(orders_runtime, ada, key="key-complete-fails").body == retry.body  # replayed from now on


def test_a_retry_after_the_first_attempt_died_right_after_storing_the_order(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, ada: Caller
) -> None:
    orders_runtime = runtimes["orders"]
    orders, idempotency = collections(mongo_client, orders_runtime)
    before = {document["_id"] for document in orders.find({}, {"_id": 1})}

    publisher = orders_api.service().outbox._publisher
    with (
        mock.patch.object(publisher, "publish", side_effect=ContainerKilled),
        pytest.raises(ContainerKilled),
    ):
        place(orders_runtime, ada, key="key-timed-out")  # timed out in a slow SNS publish
    [stored] = keyed_orders(orders, before)

    expire_in_progress_records(idempotency)
    retry = place(orders_runtime, ada, key="key-timed-out")

    assert retry.status == 201
    assert retry.body["order_id"] == stored["_id"]
    assert retry.body["status"] == "PENDING"
    assert [document["_id"] for document in keyed_orders(orders, before)] == [stored["_id"]]

    # Its OrderPlaced waits in the order's outbox; the scheduled relay publishes it.
    orders.update_one(
        {"_id": stored["_id"]}, {"$set": {"pending_events.0.recorded_at": datetime.now(UTC) - timedelta(minutes=1)}}
    )
    assert orders_runtime.invoke(relay.handler, json.loads(json.dumps({"detail": {}}))) == {"published": 1}
    [placed] = received_events(aws.queue_urls["inventory"])
    assert (placed["event_type"], placed["data"]["order_id"]) == ("OrderPlaced", stored["_id"])


def test_a_retry_whose_key_record_is_gone_returns_the_first_order(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, ada: Caller
) -> None:
    orders_runtime = runtimes["orders"]
    orders, idempotency = collections(mongo_client, orders_runtime)
    first = place(orders_runtime, ada, key="key-record-lost")
    assert idempotency.delete_many({}).deleted_count == 1

    retry = place(orders_runtime, ada, key="key-record-lost")

    assert retry.status == 201
    assert retry.body == first.body
    assert orders.count_documents({"_id": first.body["order_id"]}) == 1
    assert orders.count_documents({}) == 2  # the warm-up order and this one
    assert len(received_events(aws.queue_urls["inventory"])) == 1


def test_another_body_under_a_key_whose_record_is_gone_is_still_422(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient, ada: Caller
) -> None:
    orders_runtime = runtimes["orders"]
    orders, idempotency = collections(mongo_client, orders_runtime)
    first = place(orders_runtime, ada, key="key-reused-late")
    idempotency.delete_many({})

    other = place(orders_runtime, ada, items=OTHER_ITEMS, key="key-reused-late")

    assert (other.status, other.body["code"]) == (422, "idempotency_key_reused")
    assert idempotency.count_documents({}) == 0  # a 4xx stores nothing
    assert orders.count_documents({}) == 2
    assert place(orders_runtime, ada, key="key-reused-late").body == first.body


def test_another_body_after_the_first_attempt_died_is_422(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient, ada: Caller
) -> None:
    orders_runtime = runtimes["orders"]
    orders, idempotency = collections(mongo_client, orders_runtime)
    before = {document["_id"] for document in orders.find({}, {"_id": 1})}
    publisher = orders_api.service().outbox._publisher
    with mock.patch.object(publisher, "publish", side_effect=ContainerKilled), pytest.raises(ContainerKilled):
        place(orders_runtime, ada, key="key-died-then-reused")
    expire_in_progress_records(idempotency)

    other = place(orders_runtime, ada, items=OTHER_ITEMS, key="key-died-then-reused")

    assert (other.status, other.body["code"]) == (422, "idempotency_key_reused")
    assert len(keyed_orders(orders, before)) == 1
