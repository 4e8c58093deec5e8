"""Outbox flush: never loses an event, never fails the caller (fakes, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from pymongo.collection import Collection

from shop_common.outbox import Outbox, PendingEvent
from shop_common.publisher import OutgoingEvent, SnsPublisher

EVENT = PendingEvent("e1", "OrderPlaced", "{}", datetime(2026, 11, 23, tzinfo=UTC))


class FakePublisher:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.published: list[str] = []

    def publish(self, events: Sequence[OutgoingEvent]) -> None:
        if self.fail:
            raise ConnectionError("SNS unreachable")
        self.published += [event.event_id for event in events]


class FakeCollection:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.updates: list[tuple[Any, Any]] = []

    def update_one(self, query: Any, update: Any) -> None:
        if self.fail:
            raise TimeoutError("MongoDB unreachable")
        self.updates.append((query, update))


def flush(publisher: FakePublisher, collection: FakeCollection) -> bool:
    outbox = Outbox(cast(SnsPublisher, publisher))
    return outbox.flush(cast(Collection, collection), "o1", [EVENT])


def test_published_events_are_pulled_from_the_document() -> None:
    publisher, collection = FakePublisher(), FakeCollection()
    assert flush(publisher, collection) is True
    assert publisher.published == ["e1"]
    assert collection.updates == [({"_id": "o1"}, {"$pull": {"pending_events": {"event_id": {"$in": ["e1"]}}}})]


def test_failed_publish_leaves_events_pending_and_does_not_raise() -> None:
    collection = FakeCollection()
    assert flush(FakePublisher(fail=True), collection) is False
    assert collection.updates == []


def test_failed_mark_after_publish_does_not_raise() -> None:
    publisher = FakePublisher()
    assert flush(publisher, FakeCollection(fail=True)) is False
    assert publisher.published == ["e1"]
