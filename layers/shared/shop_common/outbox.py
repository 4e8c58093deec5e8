"""Transactional outbox, embedded in the aggregate document.

A write that changes an aggregate pushes the events announcing the change into that same
document's ``pending_events`` array, in the same single-document (so atomic) write. Right
after the write the events are published and pulled from the array; if that publish fails
or the function dies first, the scheduled relay finds them and publishes them later.
An event is pulled only after SNS accepted it, so a crash, a retry or two relays at once may
publish one twice but never lose one: publishing is at-least-once, every consumer idempotent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from pymongo import UpdateOne
from pymongo.collection import Collection

from shop_common.clock import utc_now
from shop_common.events import EventEnvelope
from shop_common.publisher import PUBLISH_BUDGET, SnsPublisher, batches

logger = Logger(child=True)

PENDING_EVENTS = "pending_events"
# The relay leaves young events alone: the request that wrote them is probably publishing them.
RELAY_MIN_AGE = timedelta(seconds=30)
# PublishBatch calls in flight at once, each started on a free thread (so it ends within its
# budget of the moment it started): SNS answers in tens of ms, so a few threads drain 10,000
# events in seconds (bench/relay_drain.py); botocore pools 10 connections per client.
RELAY_PUBLISHERS = 8
# Documents whose published ids go to MongoDB together, in one bulk_write of $pulls.
RELAY_PULL_BATCH = 500
# Failed PublishBatch calls in a row that stop a run: SNS is down, not one batch refused.
RELAY_FAILURES_TO_STOP = 3
# A publish starts only while its worst case still fits in the invocation, with a second to
# spare for the $pull and the answer: neither a request nor the relay runs into its timeout.
PUBLISH_RESERVE_SECONDS = PUBLISH_BUDGET.worst_case_seconds + 1

SecondsLeft = Callable[[], float | None]


@dataclass(frozen=True)
class PendingEvent:
    event_id: str
    event_type: str
    body: str
    recorded_at: datetime

    @classmethod
    def of(cls, event: EventEnvelope) -> PendingEvent:
        event_type = str(event.model_dump(include={"event_type"})["event_type"])
        return cls(str(event.event_id), event_type, event.model_dump_json(), event.occurred_at)

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> PendingEvent:
        return cls(**{field: document[field] for field in ("event_id", "event_type", "body", "recorded_at")})

    def to_document(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "body": self.body,
            "recorded_at": self.recorded_at,
        }


def push_events(events: Iterable[EventEnvelope]) -> tuple[list[PendingEvent], dict[str, Any]]:
    """The pending events and the ``$push`` clause that records them with an update."""
    pending = [PendingEvent.of(event) for event in events]
    return pending, {PENDING_EVENTS: {"$each": [entry.to_document() for entry in pending]}}


def pull_events(event_ids: Iterable[str]) -> dict[str, Any]:
    """The update that removes published events from their document."""
    return {"$pull": {PENDING_EVENTS: {"event_id": {"$in": list(event_ids)}}}}


def ensure_outbox_index(collection: Collection) -> None:
    collection.create_index(f"{PENDING_EVENTS}.recorded_at", name="outbox_pending")


class Outbox:
    def __init__(self, publisher: SnsPublisher, seconds_left: SecondsLeft) -> None:
        self._publisher = publisher
        self._seconds_left = seconds_left

    def warm_up(self) -> None:
        self._publisher.warm_up()

    def flush(self, collection: Collection, document_id: Any, events: Sequence[PendingEvent]) -> bool:
        """Publish ``events`` and remove them from the document; False if any stay pending.

        Never raises and never risks the function's timeout: the change is already committed
        with its events, so the caller's answer must not depend on this step; whatever is
        left, the relay publishes later.
        """
        if not events:
            return True
        if self._too_late_to_publish():
            logger.warning("Too little time left to publish; events left in the outbox", extra={"count": len(events)})
            return False
        try:
            accepted = self._publisher.publish(events)
        except Exception:
            logger.exception("Publish failed; events left in the outbox", extra={"count": len(events)})
            return False
        published = [event.event_id for event in events if event.event_id in accepted]
        if published:
            try:
                collection.update_one({"_id": document_id}, pull_events(published))
            except Exception:  # published but still marked pending: the relay publishes them again (at-least-once)
                logger.exception("Could not mark events published", extra={"count": len(published)})
                return False
        return len(published) == len(events)

    def relay(self, collections: Iterable[Collection], min_age: timedelta = RELAY_MIN_AGE) -> int:
        """Publish the pending events older than ``min_age``, as many as the invocation's time
        allows; returns how many were published. Whatever is left waits for the next run."""
        run = _RelayRun(self._publisher, self._too_late_to_publish)
        with ThreadPoolExecutor(RELAY_PUBLISHERS, thread_name_prefix="outbox-relay") as pool:
            for collection in collections:
                run.drain(collection, utc_now() - min_age, pool)
                if run.stopped:
                    break
        return run.published

    def _too_late_to_publish(self) -> bool:
        left = self._seconds_left()
        return left is not None and left < PUBLISH_RESERVE_SECONDS


class _RelayRun:
    """One relay invocation: the old pending events of each collection, streamed, published
    10 to a PublishBatch with several calls in flight, and $pulled from their documents in
    bulk, each document losing only the ids SNS accepted."""

    def __init__(self, publisher: SnsPublisher, out_of_time: Callable[[], bool]) -> None:
        self.published = 0
        self.stopped = False  # out of time, or SNS failing: the rest waits for the next run
        self._failures_in_a_row = 0
        self._publisher = publisher
        self._out_of_time = out_of_time
        self._document_of: dict[str, Any] = {}  # event id -> the id of the document holding it
        self._in_flight: dict[Future[set[str]], list[PendingEvent]] = {}
        self._to_pull: dict[Any, list[str]] = defaultdict(list)

    def drain(self, collection: Collection, cutoff: datetime, pool: ThreadPoolExecutor) -> None:
        query = {f"{PENDING_EVENTS}.recorded_at": {"$lte": cutoff}}
        old_only = {"$filter": {"input": f"${PENDING_EVENTS}", "cond": {"$lte": ["$$this.recorded_at", cutoff]}}}
        with collection.find(query, {PENDING_EVENTS: old_only}) as documents:
            for batch in batches(self._events_of(documents)):
                while len(self._in_flight) >= RELAY_PUBLISHERS:
                    self._settle(collection, FIRST_COMPLETED)
                if self._should_stop():  # checked right before the call starts
                    break
                self._in_flight[pool.submit(self._publisher.publish, batch)] = batch
        self._settle(collection, ALL_COMPLETED)
        self._pull(collection)

    def _events_of(self, documents: Iterable[dict[str, Any]]) -> Iterator[PendingEvent]:
        for document in documents:
            for entry in document[PENDING_EVENTS]:
                event = PendingEvent.from_document(entry)
                # A document the cursor meets twice must not put an id twice into one PublishBatch.
                if event.event_id not in self._document_of:
                    self._document_of[event.event_id] = document["_id"]
                    yield event

    def _should_stop(self) -> bool:
        if not self.stopped and self._out_of_time():
            logger.warning("Relay out of time; the rest waits for its next run", extra={"published": self.published})
            self.stopped = True
        return self.stopped

    def _settle(self, collection: Collection, return_when: str) -> None:
        """Wait for publishes in flight, then note what SNS accepted for the $pull."""
        done, _ = wait(self._in_flight, return_when=return_when)
        for future in done:
            batch = self._in_flight.pop(future)
            try:
                accepted = future.result()
            except Exception:
                logger.exception("Publish failed; its events stay pending")
                self._failures_in_a_row += 1
                if self._failures_in_a_row == RELAY_FAILURES_TO_STOP:
                    logger.warning("SNS keeps failing; the rest waits for the next run")
                    self.stopped = True
                continue
            self._failures_in_a_row = 0
            self.published += len(accepted)
            for event in batch:
                if event.event_id in accepted:
                    self._to_pull[self._document_of[event.event_id]].append(event.event_id)
        if len(self._to_pull) >= RELAY_PULL_BATCH:
            self._pull(collection)

    def _pull(self, collection: Collection) -> None:
        if self._to_pull:
            collection.bulk_write(
                [UpdateOne({"_id": document_id}, pull_events(ids)) for document_id, ids in self._to_pull.items()],
                ordered=False,
            )
            self._to_pull.clear()
