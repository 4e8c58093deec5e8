"""Elections under load, as Atlas holds them during maintenance: against a three-member replica
set, orders are placed from many threads and the saga runs while the primary steps down, and then
the new primary is killed (SIGKILL) and, once another is elected, started again.

Every answer of the API is a 201, a 4xx or a 503 with Retry-After; every record that failed
returns to its queue and succeeds later; afterwards every order that got a 201 is there, every
order has reached a final state, no record is dead-lettered and the stock adds up.
"""

from __future__ import annotations

import json
import random
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from pymongo import MongoClient

from devstack.delivery import sns_event, sqs_record
from devstack.mongod import ReplicaSet
from inventory import api as inventory_api
from inventory import relay as inventory_relay
from orders import api as orders_api
from orders import relay as orders_relay
from payments import relay as payments_relay
from payments import sweep as payments_sweep
from shop_common.clock import utc_now
from tests.conftest import AwsResources, LocalStripe
from tests.integration.test_saga import HANDLERS, Handler, Shop
from tests.support import ServiceRuntime, api_event, context_for, failed_ids, to_response
from users import api as users_api
from users import relay as users_relay

CUSTOMERS = 4
# Between a customer's orders: few enough orders that the saga keeps up with them (and so meets
# the elections) and settles them soon after.
THINK_SECONDS = 0.3
STOCK = {"ELECT-SCARCE": 30, "ELECT-PLENTY": 100_000}  # the scarce one runs out: some orders are rejected
FINAL = {"CONFIRMED", "REJECTED"}
# Phases of the load, in seconds: before the step-down, between it and the kill, after the restart.
# The kill's election takes about 10-12 s (the members' election timeout); the restart follows it.
BEFORE_STEP_DOWN, AFTER_STEP_DOWN, AFTER_RESTART = 3.0, 4.0, 4.0
# A record that failed comes back this much later (SQS's backoff holds it back minutes; a few
# seconds keep the test short while sparing the record's receives during an election).
REDELIVERY_DELAY = 4.0
RELAYS = {"users": users_relay, "orders": orders_relay, "inventory": inventory_relay, "payments": payments_relay}
SCHEDULE = {"detail-type": "Scheduled Event", "detail": {}}
# Bounds of the settling after the load: passes over every queue and relay.
SETTLE_PASSES = 200


@pytest.fixture(scope="module")
def replica_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaSet]:
    members = ReplicaSet(Path(tmp_path_factory.mktemp("replica-set")))
    members.start()
    yield members
    members.stop()


@pytest.fixture(scope="module")
def mongo_uri(replica_set: ReplicaSet) -> str:
    """The services' MONGODB_URI for this module: the three-member set."""
    return replica_set.uri


@pytest.fixture(scope="module")
def mongo_client(mongo_uri: str) -> Iterator[MongoClient]:
    client: MongoClient = MongoClient(mongo_uri, tz_aware=True, w="majority")
    yield client
    client.close()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    at: float

    @property
    def problem(self) -> str | None:
        """Why this answer breaks the contract, if it does."""
        if self.status == 503 and "Retry-After" not in self.headers:
            return "503 without Retry-After"
        if self.status >= 500 and self.status != 503:
            return f"{self.status} {self.body}"
        return None


class Redeliveries:
    """Drives the consumers as their event source mappings would: a record that failed is not
    deleted, and its message is made visible again REDELIVERY_DELAY later (whatever visibility
    the function's own backoff gave it)."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.sqs = boto3.client("sqs")
        self.due: list[tuple[float, str, str]] = []  # (when, queue url, receipt handle)
        self.failures = 0

    def deliver(self, consumer: str) -> int:
        """One batch of ``consumer``'s queue (notifications: every waiting message); how many."""
        queue_url, runtime, handler = (
            self.shop.aws.queue_urls[consumer],
            self.shop.runtimes[consumer],
            HANDLERS[consumer],
        )
        if consumer == "notifications":
            return self._deliver_sns(queue_url, runtime, handler)
        received = self.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
        ).get("Messages", [])
        if not received:
            return 0
        queue_arn = f"arn:aws:sqs:eu-west-1:123456789012:{queue_url.rsplit('/', 1)[-1]}"
        failed = set(failed_ids(runtime.invoke(handler, {"Records": [sqs_record(m, queue_arn) for m in received]})))
        for message in received:
            if message["MessageId"] in failed:
                self.failures += 1
                self.due.append((time.monotonic() + REDELIVERY_DELAY, queue_url, message["ReceiptHandle"]))
            else:
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(received)

    def _deliver_sns(self, queue_url: str, runtime: ServiceRuntime, handler: Handler) -> int:
        """An SNS notification invokes its function asynchronously: if it raises, Lambda invokes
        it again later (twice, then its dead-letter queue), so the notification comes back."""
        received = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        for message in received:
            try:
                runtime.invoke(handler, sns_event(json.loads(message["Body"])))
            except Exception:
                self.failures += 1
                self.due.append((time.monotonic() + REDELIVERY_DELAY, queue_url, message["ReceiptHandle"]))
            else:
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(received)

    def return_due(self, now: float) -> int:
        """Make the failed records whose time has come visible again; how many."""
        due = [item for item in self.due if item[0] <= now]
        self.due = [item for item in self.due if item[0] > now]
        for _, queue_url, receipt_handle in due:
            self.sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)
        return len(due)

    def relay(self) -> int:
        """Run every outbox relay once, as their schedules would; how many events they published."""
        published = 0
        for service, relay in RELAYS.items():
            try:
                published += self.shop.runtimes[service].invoke(relay.handler, SCHEDULE)["published"]
            except Exception:
                self.failures += 1  # a failed run leaves its events in the outbox for the next
        return published

    def settle(self) -> None:
        """Passes until no queue, relay or failed record has work left."""
        for _ in range(SETTLE_PASSES):
            if self.one_pass() == 0 and not self.due:
                return
            time.sleep(0.2 if self.due else 0)
        raise AssertionError(f"{len(self.due)} records still failing after {SETTLE_PASSES} passes")

    def one_pass(self) -> int:
        """Deliver a batch of every queue and run the relays; how much work there was."""
        work = self.relay() + sum(self.deliver(consumer) for consumer in HANDLERS)
        return work + self.return_due(time.monotonic())


def place_order(rng: random.Random) -> Answer:
    items = [{"sku": "ELECT-PLENTY", "quantity": rng.randint(1, 3)}]
    if rng.random() < 0.5:
        items.append({"sku": "ELECT-SCARCE", "quantity": rng.randint(1, 2)})
    event = api_event(
        "api-orders-create",
        body={"items": items, "payment_method": "pm_card_visa"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    # The orders container is warm (its settings read): the call needs no environment of its own,
    # which the saga's thread, the only one that sets it, may change meanwhile.
    handler: Handler = orders_api.handler
    response = to_response(handler(event, context_for(handler)))
    return Answer(response.status, response.headers, response.body, time.monotonic())


def run_until(stopping: threading.Event, work: Callable[[], Any], raised: list[BaseException]) -> Callable[[], None]:
    """``work`` again and again until ``stopping``; what it raises (a handler that raised instead of
    answering, say) ends the loop and is kept in ``raised``."""

    def loop() -> None:
        try:
            while not stopping.is_set():
                work()
        except BaseException as error:
            raised.append(error)

    return loop


def two_minutes_pass(shop: Shop, mongo_client: MongoClient) -> None:
    """What the schedules would find two minutes later. An event whose immediate publish the
    election cut off waits in its outbox until the relay takes it (events over 30 s old); an
    invocation cut off mid-payment leaves its provider lease (90 s) behind, which the payments
    sweep resumes once it has run out."""
    earlier = utc_now() - timedelta(minutes=2)
    for runtime in shop.runtimes.values():
        database = mongo_client[runtime.env["MONGODB_DATABASE"]]
        for name in database.list_collection_names():
            database[name].update_many(
                {"pending_events.0": {"$exists": True}}, {"$set": {"pending_events.$[].recorded_at": earlier}}
            )
    payments = mongo_client[shop.runtimes["payments"].env["MONGODB_DATABASE"]]["payments"]
    payments.update_many({"lease": {"$ne": None}}, {"$set": {"lease.until": earlier}})


@dataclass
class Load:
    answers: list[Answer]
    raised: list[BaseException]  # what the threads raised instead of answering
    killed_at: float
    restarted_at: float


def under_load(replica_set: ReplicaSet, saga: Redeliveries) -> Load:
    """Customers place orders and the saga runs, while the primary steps down and then the new
    primary is killed and, once another is elected, restarted."""
    answers: list[Answer] = []
    raised: list[BaseException] = []
    stopping = threading.Event()

    def customer(seed: int) -> Callable[[], None]:
        rng = random.Random(seed)

        def order_and_pause() -> None:
            answers.append(place_order(rng))
            time.sleep(THINK_SECONDS)

        return run_until(stopping, order_and_pause, raised)

    threads = [threading.Thread(target=customer(seed)) for seed in range(CUSTOMERS)]
    threads.append(threading.Thread(target=run_until(stopping, saga.one_pass, raised)))
    for thread in threads:
        thread.start()
    try:
        time.sleep(BEFORE_STEP_DOWN)
        stepped_down = replica_set.step_down()
        new_primary = replica_set.wait_for_primary()
        assert new_primary is not stepped_down
        time.sleep(AFTER_STEP_DOWN)
        new_primary.kill()
        killed_at = time.monotonic()
        replica_set.wait_for_primary()
        replica_set.restart(new_primary)
        restarted_at = time.monotonic()
        time.sleep(AFTER_RESTART)
    finally:
        stopping.set()
        for thread in threads:
            thread.join()
    return Load(answers, raised, killed_at, restarted_at)


@pytest.fixture
def shop(runtimes: dict[str, ServiceRuntime], aws: AwsResources, localstripe: LocalStripe) -> Shop:
    """The products in stock, a registered customer, and one order through the whole saga: every
    service's container is warm before the threads share them."""
    shop = Shop(runtimes, aws, localstripe)
    for sku, available in STOCK.items():
        body = {"name": sku, "unit_price_cents": 100, "available": available}
        stocked = runtimes["inventory"].http(
            inventory_api.handler, api_event("api-inventory-put", body=body, path_params={"sku": sku})
        )
        assert stocked.status == 200
    assert runtimes["users"].http(users_api.handler, api_event("api-users-create")).status == 201
    shop.settle()
    first = shop.place([{"sku": "ELECT-PLENTY", "quantity": 1}], "pm_card_visa")
    shop.settle()
    assert shop.order(first)["status"] == "CONFIRMED"
    return shop


def test_orders_under_load_survive_a_step_down_and_the_new_primary_killed(
    replica_set: ReplicaSet, shop: Shop, aws: AwsResources, mongo_client: MongoClient
) -> None:
    saga = Redeliveries(shop)
    load = under_load(replica_set, saga)

    assert not load.raised, "".join(traceback.format_exception(load.raised[0]))
    assert [answer.problem for answer in load.answers if answer.problem] == []
    assert any(answer.status == 503 for answer in load.answers if answer.at > load.killed_at), "no election felt"
    assert any(answer.status == 201 for answer in load.answers if answer.at > load.restarted_at), "no recovery"
    assert saga.failures > 0, "no record failed: the saga never met an election"

    saga.settle()
    two_minutes_pass(shop, mongo_client)
    shop.runtimes["payments"].invoke(payments_sweep.handler, SCHEDULE)
    saga.settle()

    for name, url in aws.dead_letter_queue_urls.items():
        depth = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        assert (name, depth["Attributes"]["ApproximateNumberOfMessages"]) == (name, "0")
    created = {answer.body["order_id"] for answer in load.answers if answer.status == 201}
    orders_collection = mongo_client[shop.runtimes["orders"].env["MONGODB_DATABASE"]]["orders"]
    orders = {document["_id"]: document for document in orders_collection.find()}
    assert created - set(orders) == set(), "orders acknowledged with 201 were lost"
    assert {order_id: order["status"] for order_id, order in orders.items() if order["status"] not in FINAL} == {}
    assert all(shop.order(order_id)["order_id"] == order_id for order_id in created)
    assert any(order["status"] == "CONFIRMED" for order in orders.values())
    for sku, initial in STOCK.items():
        confirmed = sum(
            line["quantity"]
            for order in orders.values()
            if order["status"] == "CONFIRMED"
            for line in order["items"]
            if line["sku"] == sku
        )
        available, reserved = shop.stock(sku)
        assert (sku, available + reserved, reserved) == (sku, initial, confirmed)
