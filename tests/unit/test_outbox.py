"""Outbox flush: never loses an event, never fails the caller nor overruns it (fakes, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from pymongo.collection import Collection

from shop_common.outbox import PUBLISH_RESERVE_SECONDS, Outbox, PendingEvent, SecondsLeft
from shop_common.publisher import OutgoingEvent, SnsPublisher, batches

AT = datetime(2026, 11, 23, tzinfo=UTC)
EVENT = PendingEvent("e1", "OrderPlaced", "{}", AT)


class FakePublisher:
    def __init__(self, fail: bool = False, refuse: frozenset[str] = frozenset()) -> None:
        self.fail = fail
        self.refuse = refuse
        self.published: list[str] = []

    def publish(self, events: Sequence[OutgoingEvent]) -> set[str]:
        if self.fail:
            raise ConnectionError("SNS unreachable")
        accepted = [event.event_id for event in events if event.event_id not in self.refuse]
        self.published += accepted
        return set(accepted)


class FakeCollection:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.updates: list[tuple[Any, Any]] = []

    def update_one(self, query: Any, update: Any) -> None:
        if self.fail:
            raise TimeoutError("MongoDB unreachable")
        self.updates.append((query, update))


def no_deadline() -> float | None:
    return None


def flush(
    publisher: FakePublisher,
    collection: FakeCollection,
    events: Sequence[PendingEvent] = (EVENT,),
    seconds_left: SecondsLeft = no_deadline,
) -> bool:
    outbox = Outbox(cast(SnsPublisher, publisher), seconds_left)
    return outbox.flush(cast(Collection, collection), "o1", events)


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


def test_only_the_events_sns_accepted_are_pulled() -> None:
    publisher, collection = FakePublisher(refuse=frozenset({"e2"})), FakeCollection()
    second = PendingEvent("e2", "OrderPlaced", "{}", AT)
    assert flush(publisher, collection, [EVENT, second]) is False
    assert collection.updates == [({"_id": "o1"}, {"$pull": {"pending_events": {"event_id": {"$in": ["e1"]}}}})]


def test_no_publish_starts_when_its_worst_case_would_overrun_the_invocation() -> None:
    publisher, collection = FakePublisher(), FakeCollection()
    assert flush(publisher, collection, seconds_left=lambda: PUBLISH_RESERVE_SECONDS - 0.1) is False
    assert (publisher.published, collection.updates) == ([], [])

    assert flush(publisher, collection, seconds_left=lambda: PUBLISH_RESERVE_SECONDS + 0.1) is True
    assert publisher.published == ["e1"]


def test_publish_batches_hold_ten_entries_and_256_kib_at_most() -> None:
    small = [PendingEvent(f"s{index}", "OrderPlaced", "{}", AT) for index in range(23)]
    assert [len(batch) for batch in batches(small)] == [10, 10, 3]

    big = [PendingEvent(f"b{index}", "OrderPlaced", "x" * 100_000, AT) for index in range(5)]
    assert [len(batch) for batch in batches(big)] == [2, 2, 1]  # 3 x 100 kB would pass 256 KiB
