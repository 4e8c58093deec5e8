"""The outbox relay after an SNS outage: a backlog of events drained by one relay run, next to
the serial relay it replaced, both on the real mongod and the moto server, in this process.

The serial relay (kept here only as the baseline) took at most 100 documents per collection
per run and published each document's events with its own PublishBatch, one after another;
on a schedule of one run a minute, a backlog of 10,000 one-event documents took 100 runs.
`python -m bench.relay_drain [events]` runs it alone.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from unittest import mock

from pymongo.collection import Collection

from bench.environment import ROOT, BenchEnvironment, bench_environment
from devstack.template import load_template

sys.path.insert(0, str(ROOT / "layers" / "shared"))  # the shared layer, where Lambda puts it

from shop_common.clock import utc_now
from shop_common.mongo import client_for
from shop_common.outbox import PENDING_EVENTS, RELAY_MIN_AGE, RELAY_PUBLISHERS, Outbox, PendingEvent, pull_events
from shop_common.publisher import SnsPublisher
from shop_common.settings import ServiceSettings

BACKLOG = 10_000  # 10 orders/s through a 17-minute outage, or events of several services
SERIAL_RELAY_DOCUMENTS_PER_RUN = 100
RELAY_TIMEOUT_SECONDS = float(load_template()["Resources"]["OrdersOutboxRelayFunction"]["Properties"]["Timeout"])
# An OrderPlaced envelope with two lines is about this long.
EVENT_BYTES = 450


@dataclass
class DrainRun:
    events: int
    seconds: float
    runs: int

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    def seconds_for(self, events: int) -> float:
        return events / self.events_per_second


@dataclass
class RelayDrainResult:
    relay: DrainRun
    serial: DrainRun
    publishers: int  # PublishBatch calls the relay keeps in flight


def back_up(collection: Collection, events: int) -> None:
    """One pending event per document, recorded before the outage began."""
    recorded_at = utc_now() - timedelta(minutes=10)
    documents = []
    for index in range(events):
        event_id = str(uuid.uuid4())
        body = json.dumps({"event_id": event_id, "event_type": "OrderPlaced", "data": "x" * (EVENT_BYTES - 80)})
        pending = PendingEvent(event_id, "OrderPlaced", body, recorded_at)
        documents.append({"_id": f"order-{index}", "status": "PENDING", PENDING_EVENTS: [pending.to_document()]})
    collection.insert_many(documents)


def serial_relay_run(publisher: SnsPublisher, collection: Collection) -> int:
    """The relay before issue 8, one run: the baseline."""
    cutoff = utc_now() - RELAY_MIN_AGE
    published = 0
    query = {f"{PENDING_EVENTS}.recorded_at": {"$lte": cutoff}}
    for document in collection.find(query, {PENDING_EVENTS: 1}).limit(SERIAL_RELAY_DOCUMENTS_PER_RUN):
        events = [PendingEvent.from_document(entry) for entry in document[PENDING_EVENTS]]
        accepted = publisher.publish(events)
        collection.update_one({"_id": document["_id"]}, pull_events(accepted))
        published += len(accepted)
    return published


def drain(collection: Collection, events: int, one_run: Callable[[], int]) -> DrainRun:
    """Back up ``events``, then run relays back to back until none is left."""
    collection.delete_many({})
    back_up(collection, events)
    published, runs = 0, 0
    started = time.perf_counter()
    while published < events:
        published += one_run()
        runs += 1
    seconds = time.perf_counter() - started
    if collection.count_documents({f"{PENDING_EVENTS}.0": {"$exists": True}}):
        raise RuntimeError("events left pending after the drain")
    return DrainRun(published, seconds, runs)


def measure_relay_drain(environment: BenchEnvironment, events: int, serial_events: int) -> RelayDrainResult:
    settings = ServiceSettings(
        service_name="orders",
        mongodb_database=f"{environment.prefix}_relay",
        event_topic_arn=environment.topic_arn,
        aws_endpoint_url=environment.aws_endpoint_url,
    )
    database = client_for(environment.mongodb_uri, "bench-relay")[settings.mongodb_database]
    collection = database["orders"]
    collection.create_index(f"{PENDING_EVENTS}.recorded_at", name="outbox_pending")
    publisher = SnsPublisher(settings)
    with mock.patch.dict(os.environ, environment.service_env("orders")):  # region and credentials
        publisher.publish([PendingEvent("warm-up", "OrderPlaced", "{}", utc_now())])  # builds the client

    def relay_run() -> int:
        deadline = time.monotonic() + RELAY_TIMEOUT_SECONDS  # as the Lambda context counts it
        return Outbox(publisher, lambda: deadline - time.monotonic()).relay([collection])

    try:
        relay = drain(collection, events, relay_run)
        serial = drain(collection, serial_events, lambda: serial_relay_run(publisher, collection))
    finally:
        database.client.drop_database(database.name)
    return RelayDrainResult(relay, serial, RELAY_PUBLISHERS)


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else BACKLOG
    with bench_environment() as environment:
        result = measure_relay_drain(environment, events, max(events // 10, SERIAL_RELAY_DOCUMENTS_PER_RUN))
    for name, run in (("relay", result.relay), ("serial baseline", result.serial)):
        print(f"{name}: {run.events} events in {run.seconds:.2f} s, {run.runs} run(s), {run.events_per_second:.0f}/s")


if __name__ == "__main__":
    main()
