"""Transactional outbox, embedded in the aggregate document.

A write that changes an aggregate pushes the events announcing the change into that same
document's ``pending_events`` array, in the same single-document (so atomic) write. Right
after the write the events are published and pulled from the array; if that publish fails
or the function dies first, the scheduled relay finds them and publishes them later.
Publishing is therefore at-least-once, and every consumer is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from pymongo.collection import Collection

from shop_common.clock import utc_now
from shop_common.events import EventEnvelope
from shop_common.publisher import SnsPublisher

logger = Logger(child=True)

PENDING_EVENTS = "pending_events"
# The relay leaves young events alone: the request that wrote them is probably publishing them.
RELAY_MIN_AGE = timedelta(seconds=30)
RELAY_BATCH = 100


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


def ensure_outbox_index(collection: Collection) -> None:
    collection.create_index(f"{PENDING_EVENTS}.recorded_at", name="outbox_pending")


class Outbox:
    def __init__(self, publisher: SnsPublisher) -> None:
        self._publisher = publisher

    def flush(self, collection: Collection, document_id: Any, events: Sequence[PendingEvent]) -> bool:
        """Publish ``events`` and remove them from the document; False if they stay pending.

        Never raises: the change is already committed with its events, so the caller's
        answer must not depend on this step; whatever is left, the relay publishes later.
        """
        if not events:
            return True
        try:
            self._publisher.publish(events)
        except Exception:
            logger.exception("Publish failed; events left in the outbox", extra={"count": len(events)})
            return False
        try:
            collection.update_one(
                {"_id": document_id},
                {"$pull": {PENDING_EVENTS: {"event_id": {"$in": [event.event_id for event in events]}}}},
            )
        except Exception:  # published but still marked pending: the relay publishes them again (at-least-once)
            logger.exception("Could not mark events published", extra={"count": len(events)})
            return False
        return True

    def relay(self, collections: Iterable[Collection], min_age: timedelta = RELAY_MIN_AGE) -> int:
        """Publish whatever older pending events remain; returns how many were published."""
        cutoff = utc_now() - min_age
        published = 0
        for collection in collections:
            query = {f"{PENDING_EVENTS}.recorded_at": {"$lte": cutoff}}
            for document in collection.find(query, {PENDING_EVENTS: 1}).limit(RELAY_BATCH):
                events = [PendingEvent.from_document(entry) for entry in document[PENDING_EVENTS]]
                if self.flush(collection, document["_id"], events):
                    published += len(events)
        return published
