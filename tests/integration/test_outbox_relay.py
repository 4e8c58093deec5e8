"""The outbox relay after an SNS outage: one run drains a large backlog, each event once; it
stops before its timeout and leaves the rest to the next run; two relays at once lose nothing."""

from __future__ import annotations

import itertools
import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any
from unittest import mock

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends
from pymongo import MongoClient
from pymongo.collection import Collection

from devstack.template import load_template
from devstack.worker import LocalContext
from orders import relay
from orders.dependencies import dependencies
from shop_common.clock import utc_now
from shop_common.outbox import PUBLISH_RESERVE_SECONDS, Outbox, PendingEvent
from shop_common.publisher import OutgoingEvent, SnsPublisher
from shop_common.runtime import seconds_left
from shop_common.settings import ServiceSettings
from tests.conftest import AwsResources
from tests.support import ServiceRuntime

RELAY_TIMEOUT = load_template()["Resources"]["OrdersOutboxRelayFunction"]["Properties"]["Timeout"]
SCHEDULE = {"detail-type": "Scheduled Event", "detail": {}}


EVENT_TYPE = "BackedUpEvent"


@pytest.fixture
def topic(aws: AwsResources) -> Any:
    """The topic as moto records it, every message it accepted; without subscriptions, since
    moto's delivery to a queue costs time in proportion to every message already in it."""
    sns = boto3.client("sns")
    for subscription in sns.list_subscriptions_by_topic(TopicArn=aws.topic_arn)["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
    return sns_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"].topics[aws.topic_arn]


def back_up(collection: Collection, documents: int, events_per_document: Callable[[int], int]) -> list[str]:
    """What an SNS outage leaves behind: documents whose events were never published."""
    recorded_at = utc_now() - timedelta(minutes=10)
    event_ids: list[str] = []
    batch = []
    for index in range(documents):
        pending = []
        for _ in range(events_per_document(index)):
            event_id = str(uuid.uuid4())
            event_ids.append(event_id)
            body = json.dumps({"event_id": event_id, "event_type": EVENT_TYPE})
            pending.append(PendingEvent(event_id, EVENT_TYPE, body, recorded_at).to_document())
        batch.append({"_id": f"order-{index}", "status": "PENDING", "pending_events": pending})
    collection.insert_many(batch)
    return event_ids


def orders_collection(mongo_client: MongoClient, orders: ServiceRuntime) -> Collection:
    return mongo_client[orders.env["MONGODB_DATABASE"]]["orders"]


def published_ids(topic: Any) -> Counter[str]:
    """How many times each event was published so far."""
    return Counter(str(json.loads(message)["event_id"]) for _, message, *_ in topic.sent_notifications)


def pending_ids(collection: Collection) -> set[str]:
    return {entry["event_id"] for document in collection.find() for entry in document["pending_events"]}


def run_relay(orders: ServiceRuntime, context: LocalContext | None = None) -> Any:
    """The orders relay invoked as its schedule would, with the template's timeout."""
    invocation: Any = context or LocalContext.fresh("OrdersOutboxRelayFunction", RELAY_TIMEOUT)
    with mock.patch.dict(os.environ, orders.env):
        return relay.handler(SCHEDULE, invocation)


def test_one_run_drains_a_large_backlog_publishing_each_event_once(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, topic: Any
) -> None:
    orders = runtimes["orders"]
    collection = orders_collection(mongo_client, orders)
    backlog = back_up(collection, 1000, lambda index: 2 + index % 2)  # 2,500 events
    young = PendingEvent(str(uuid.uuid4()), EVENT_TYPE, "{}", utc_now()).to_document()
    collection.update_one({"_id": "order-7"}, {"$push": {"pending_events": young}})  # its request may publish it

    assert run_relay(orders) == {"published": 2500}

    published = published_ids(topic)
    assert set(published) == set(backlog)
    assert set(published.values()) == {1}
    assert pending_ids(collection) == {young["event_id"]}


def test_a_run_short_of_time_stops_cleanly_and_the_next_run_publishes_the_rest(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, topic: Any
) -> None:
    orders = runtimes["orders"]
    collection = orders_collection(mongo_client, orders)
    run_relay(orders)  # an empty run builds the container's dependencies
    backlog = back_up(collection, 600, lambda _: 1)
    publisher = dependencies().outbox._publisher
    context = LocalContext.fresh("OrdersOutboxRelayFunction", RELAY_TIMEOUT)
    calls = itertools.count(1)
    publish = publisher.publish

    def publish_then_run_late(events: Sequence[OutgoingEvent]) -> set[str]:
        if next(calls) == 5:  # the fifth PublishBatch takes the invocation close to its timeout
            context.deadline -= RELAY_TIMEOUT - PUBLISH_RESERVE_SECONDS + 0.5
        return publish(events)

    with mock.patch.object(publisher, "publish", side_effect=publish_then_run_late):
        first = run_relay(orders, context)["published"]

    assert 50 <= first < 600
    published = published_ids(topic)
    assert set(published.values()) == {1}
    assert pending_ids(collection) == set(backlog) - set(published)  # pulled only once published

    assert run_relay(orders) == {"published": 600 - first}
    published = published_ids(topic)
    assert set(published) == set(backlog)
    assert set(published.values()) == {1}
    assert pending_ids(collection) == set()


def test_two_relays_racing_over_one_backlog_publish_every_event_and_leave_none_pending(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, topic: Any
) -> None:
    orders = runtimes["orders"]
    collection = orders_collection(mongo_client, orders)
    backlog = back_up(collection, 1500, lambda index: 1 + index % 2)
    settings = ServiceSettings(service_name="orders", mongodb_database="unused", event_topic_arn=aws.topic_arn)
    start = threading.Barrier(2)
    totals: list[int] = []

    def one_container() -> None:  # its own publisher and SNS client, as another Lambda container
        outbox = Outbox(SnsPublisher(settings), seconds_left)
        start.wait()
        totals.append(outbox.relay([collection]))

    relays = [threading.Thread(target=one_container) for _ in range(2)]
    for thread in relays:
        thread.start()
    for thread in relays:
        thread.join()

    published = published_ids(topic)
    assert set(published) == set(backlog)  # duplicates allowed, losses not
    assert sum(totals) == sum(published.values())
    assert pending_ids(collection) == set()


def test_a_failing_sns_stops_the_run_and_loses_nothing(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, topic: Any
) -> None:
    orders = runtimes["orders"]
    collection = orders_collection(mongo_client, orders)
    run_relay(orders)  # an empty run builds the container's dependencies
    backlog = back_up(collection, 300, lambda _: 1)  # 30 PublishBatch calls
    publisher = dependencies().outbox._publisher
    calls = itertools.count(1)
    publish = publisher.publish

    def publish_until_sns_fails(events: Sequence[OutgoingEvent]) -> set[str]:
        if next(calls) > 3:
            raise ConnectionError("SNS unreachable")
        return publish(events)

    with mock.patch.object(publisher, "publish", side_effect=publish_until_sns_fails):
        published_count = run_relay(orders)["published"]

    assert published_count == 30
    assert next(calls) < 30  # stopped instead of trying every batch against a failing SNS
    published = published_ids(topic)
    assert sum(published.values()) == published_count
    assert pending_ids(collection) == set(backlog) - set(published)


def test_one_failed_batch_stays_pending_and_the_run_goes_on(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, topic: Any
) -> None:
    orders = runtimes["orders"]
    collection = orders_collection(mongo_client, orders)
    run_relay(orders)  # an empty run builds the container's dependencies
    backlog = back_up(collection, 300, lambda _: 1)
    publisher = dependencies().outbox._publisher
    calls = itertools.count(1)
    publish = publisher.publish

    def lose_the_second_call(events: Sequence[OutgoingEvent]) -> set[str]:
        if next(calls) == 2:
            raise ConnectionError("connection reset")
        return publish(events)

    with mock.patch.object(publisher, "publish", side_effect=lose_the_second_call):
        assert run_relay(orders) == {"published": 290}

    assert len(pending_ids(collection)) == 10
    assert pending_ids(collection) == set(backlog) - set(published_ids(topic))
