"""Orders domain rules: lifecycle transitions, request validation and cursors (no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from orders import domain
from orders.domain import NewOrder, OrderStatus, PagePosition
from shop_common.events import InventoryRejectedData, InventoryReservedData, OrderCancelledData, PricedLine
from shop_common.identity import Caller

NOW = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=5)


REQUEST = NewOrder.model_validate(
    {"items": [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}], "payment_method": "pm_x"}
)
CUSTOMER = Caller(user_id="u1", email="u1@example.com", is_staff=False)
STAFF = Caller(user_id="s1", email="s1@example.com", is_staff=True)


def pending_order() -> domain.Order:
    order, _ = domain.place_order("u1", REQUEST, "o-1", "c1", NOW)
    return order


RESERVATION = InventoryReservedData(
    order_id="o", lines=[PricedLine(sku="A", quantity=2, unit_price_cents=150)], total_cents=300
)
REJECTION = InventoryRejectedData(order_id="o", reason="No A left.", unavailable=[])


def test_placing_makes_a_pending_order_and_its_order_placed_event() -> None:
    order, event = domain.place_order("u1", REQUEST, "o-1", "c1", NOW)
    assert (order.order_id, order.user_id, order.status, order.version) == ("o-1", "u1", OrderStatus.PENDING, 0)
    assert (order.total_cents, order.reason) == (None, None)
    assert [entry.status for entry in order.history] == [OrderStatus.PENDING]
    assert (event.data.order_id, event.data.user_id) == (order.order_id, "u1")
    assert (event.correlation_id, event.occurred_at) == ("c1", NOW)


@pytest.mark.parametrize("caller", [CUSTOMER, STAFF], ids=["customer", "staff"])
def test_an_order_is_placed_for_the_caller_and_no_one_else(caller: Caller) -> None:
    assert domain.placer_of(caller, REQUEST) == caller.user_id
    assert domain.placer_of(caller, REQUEST.model_copy(update={"user_id": caller.user_id})) == caller.user_id
    with pytest.raises(domain.NotForYourself) as refused:
        domain.placer_of(caller, REQUEST.model_copy(update={"user_id": "someone-else"}))
    assert refused.value.code == "forbidden"


def test_an_idempotency_key_is_scoped_to_its_caller() -> None:
    assert domain.IdempotencyKey.of(CUSTOMER, "k-1") == domain.IdempotencyKey(scope="u1", key="k-1")
    assert domain.IdempotencyKey.of(CUSTOMER, "k-1").order_id() != domain.IdempotencyKey.of(STAFF, "k-1").order_id()


def test_confirm_sets_total_and_history_once() -> None:
    transition = domain.confirm(pending_order(), RESERVATION, "c2", LATER)
    assert transition is not None
    assert transition.order.status is OrderStatus.CONFIRMED
    assert transition.order.total_cents == 300
    assert transition.order.updated_at == LATER
    assert [entry.status for entry in transition.order.history] == [OrderStatus.PENDING, OrderStatus.CONFIRMED]
    assert (transition.from_version, transition.order.version) == (0, 1)
    assert transition.event.event_type == "OrderConfirmed"
    assert domain.confirm(transition.order, RESERVATION, "c2", LATER) is None


def test_reject_records_the_reason() -> None:
    transition = domain.reject(pending_order(), REJECTION, "c2", LATER)
    assert transition is not None
    assert (transition.order.status, transition.order.reason) == (OrderStatus.REJECTED, "No A left.")
    assert transition.order.history[-1].reason == "No A left."
    assert domain.reject(transition.order, REJECTION, "c2", LATER) is None


@pytest.mark.parametrize("first", ["pending", "confirmed"])
def test_cancel_from_pending_or_confirmed_then_no_op(first: str) -> None:
    order = pending_order()
    if first == "confirmed":
        confirmed = domain.confirm(order, RESERVATION, "c", LATER)
        assert confirmed is not None
        order = confirmed.order
    transition = domain.cancel(order, "c3", LATER)
    assert transition is not None
    assert transition.order.status is OrderStatus.CANCELLED
    assert transition.order.total_cents == order.total_cents
    assert (transition.from_version, transition.order.version) == (order.version, order.version + 1)
    assert isinstance(transition.event.data, OrderCancelledData)
    assert transition.event.data.items == list(order.items)
    assert domain.cancel(transition.order, "c3", LATER) is None
    assert domain.confirm(transition.order, RESERVATION, "c", LATER) is None  # no resurrection


def test_rejected_order_is_not_cancellable() -> None:
    rejected = domain.reject(pending_order(), REJECTION, "c", LATER)
    assert rejected is not None
    with pytest.raises(domain.NotCancellable):
        domain.cancel(rejected.order, "c", LATER)


def test_cursor_round_trip_and_garbage() -> None:
    position = PagePosition(created_at=NOW.replace(microsecond=123000), order_id="o-1")
    assert domain.decode_cursor(domain.encode_cursor(position)) == position
    for garbage in ["", "!!!", "e30", "eyJ0IjoxfQ", domain.encode_cursor(position)[:-3] + "A"]:
        with pytest.raises(domain.InvalidCursor):
            domain.decode_cursor(garbage)


def test_a_cursor_counts_only_if_it_names_a_listed_order_at_its_stored_position() -> None:
    stored = PagePosition(created_at=NOW, order_id="o-1")
    same_instant_elsewhere = PagePosition(NOW.astimezone(timezone(timedelta(hours=5))), "o-1")
    assert domain.check_cursor(stored, stored) is stored
    assert domain.check_cursor(same_instant_elsewhere, stored) is stored
    for claimed, actual in [
        (PagePosition(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), "o-1"), stored),
        (PagePosition(LATER, "o-1"), stored),
        (stored, None),  # no such order in this list (another user's, or none at all)
    ]:
        with pytest.raises(domain.InvalidCursor):
            domain.check_cursor(claimed, actual)


def test_an_idempotency_key_derives_one_order_id_per_scope_and_key() -> None:
    key = domain.IdempotencyKey(scope="u1", key="k-1")
    assert key.order_id() == domain.IdempotencyKey("u1", "k-1").order_id()
    assert str(uuid.UUID(key.order_id())) == key.order_id()
    others = [
        domain.IdempotencyKey("u1", "k-2"),
        domain.IdempotencyKey("caller-b", "k-1"),
        domain.IdempotencyKey("a", "b c"),
        domain.IdempotencyKey("a b", "c"),
    ]
    assert len({key.order_id(), *(other.order_id() for other in others)}) == 5


def test_a_replay_returns_the_placed_order_only_for_the_same_request() -> None:
    placed = pending_order()
    assert domain.replay(placed, "u1", REQUEST) is placed
    with pytest.raises(domain.IdempotencyKeyReused):
        domain.replay(placed, "u2", REQUEST)
    body = REQUEST.model_dump()
    for different in [
        {**body, "payment_method": "pm_y"},
        {**body, "items": [{"sku": "A", "quantity": 3}, {"sku": "B", "quantity": 1}]},
        {**body, "items": [{"sku": "A", "quantity": 2}]},
        {**body, "items": list(reversed(body["items"]))},
    ]:
        with pytest.raises(domain.IdempotencyKeyReused):
            domain.replay(placed, "u1", NewOrder.model_validate(different))


@pytest.mark.parametrize(
    "items",
    [[], [{"sku": "A", "quantity": 1}] * 2, [{"sku": "A", "quantity": True}], [{"sku": "", "quantity": 1}]],
)
def test_new_order_validation(items: list[dict[str, object]]) -> None:
    with pytest.raises(ValidationError):
        NewOrder.model_validate({"items": items, "payment_method": "pm_card_visa"})
