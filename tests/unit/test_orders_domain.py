"""Orders domain rules: lifecycle transitions, request validation and cursors (no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from orders import domain
from orders.domain import NewOrder, OrderStatus, PagePosition, PaymentStatus
from shop_common.events import (
    InventoryRejectedData,
    InventoryReservedData,
    OrderCancelledData,
    PaymentFailedData,
    PaymentSucceededData,
    PricedLine,
)
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
PAYMENT = PaymentSucceededData(order_id="o", payment_id="pi_1", amount_cents=300, currency="usd")
DECLINE = PaymentFailedData(order_id="o", reason="Your card was declined.", decline_code="card_declined")


def confirmed_order() -> domain.Order:
    reserved = domain.record_total(pending_order(), RESERVATION, NOW)
    assert reserved is not None
    confirmed = domain.confirm(reserved.order, PAYMENT, "c", LATER)
    assert confirmed is not None
    return confirmed.order


def cancelled_order() -> domain.Order:
    cancelled = domain.cancel(pending_order(), "c", NOW)
    assert cancelled is not None
    return cancelled.order


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


def test_the_reservation_records_the_total_and_leaves_the_order_pending() -> None:
    transition = domain.record_total(pending_order(), RESERVATION, LATER)
    assert transition is not None
    assert (transition.order.status, transition.order.total_cents) == (OrderStatus.PENDING, 300)
    assert (transition.event, transition.new_history) == (None, ())
    assert (transition.from_version, transition.order.version, transition.order.updated_at) == (0, 1, LATER)
    assert domain.record_total(transition.order, RESERVATION, LATER) is None  # a duplicate


def test_the_payment_confirms_once_with_the_reserved_total() -> None:
    reserved = domain.record_total(pending_order(), RESERVATION, NOW)
    assert reserved is not None
    transition = domain.confirm(reserved.order, PAYMENT, "c2", LATER)
    assert transition is not None
    order = transition.order
    assert (order.status, order.payment_status, order.total_cents) == (
        OrderStatus.CONFIRMED,
        PaymentStatus.SUCCEEDED,
        300,
    )
    assert [entry.status for entry in order.history] == [OrderStatus.PENDING, OrderStatus.CONFIRMED]
    assert [entry.status for entry in transition.new_history] == [OrderStatus.CONFIRMED]
    assert (transition.from_version, order.version) == (1, 2)
    assert transition.event is not None
    assert (transition.event.event_type, transition.event.correlation_id) == ("OrderConfirmed", "c2")
    assert transition.event.data.model_dump() == {"order_id": "o-1", "user_id": "u1", "total_cents": 300}
    assert domain.confirm(order, PAYMENT, "c2", LATER) is None  # a duplicate
    assert domain.record_total(order, RESERVATION, LATER) is None


def test_a_payment_overtaking_the_reservation_confirms_with_its_amount_as_the_total() -> None:
    transition = domain.confirm(pending_order(), PAYMENT, "c2", LATER)
    assert transition is not None
    assert (transition.order.status, transition.order.total_cents) == (OrderStatus.CONFIRMED, 300)
    assert transition.event is not None
    assert transition.event.data.model_dump()["total_cents"] == 300
    assert domain.record_total(transition.order, RESERVATION, LATER) is None  # the late reservation


def test_a_failed_payment_rejects_with_the_providers_reason() -> None:
    transition = domain.reject_for_payment(pending_order(), DECLINE, "c2", LATER)
    assert transition is not None
    order = transition.order
    assert (order.status, order.payment_status) == (OrderStatus.REJECTED, PaymentStatus.FAILED)
    assert order.reason == "The payment failed: Your card was declined."
    assert order.history[-1].reason == order.reason
    assert transition.event is not None
    assert transition.event.data.model_dump() == {"order_id": "o-1", "user_id": "u1", "reason": order.reason}
    assert domain.reject_for_payment(order, DECLINE, "c2", LATER) is None
    with pytest.raises(domain.NotCancellable):
        domain.cancel(order, "c", LATER)


def test_inventorys_rejection_records_its_reason() -> None:
    transition = domain.reject_for_stock(pending_order(), REJECTION, "c2", LATER)
    assert transition is not None
    assert (transition.order.status, transition.order.reason) == (OrderStatus.REJECTED, "No A left.")
    assert transition.order.history[-1].reason == "No A left."
    assert domain.reject_for_stock(transition.order, REJECTION, "c2", LATER) is None


@pytest.mark.parametrize(
    ("record", "payment_status"),
    [
        (lambda order: domain.confirm(order, PAYMENT, "c", LATER), PaymentStatus.SUCCEEDED),
        (lambda order: domain.reject_for_payment(order, DECLINE, "c", LATER), PaymentStatus.FAILED),
        (lambda order: domain.record_refund(order, LATER), PaymentStatus.REFUNDED),
    ],
    ids=["succeeded", "failed", "refunded"],
)
def test_a_cancelled_order_only_records_its_payment(
    record: Callable[[domain.Order], domain.Transition | None], payment_status: PaymentStatus
) -> None:
    order = cancelled_order()
    transition = record(order)
    assert transition is not None
    assert (transition.order.status, transition.order.payment_status) == (OrderStatus.CANCELLED, payment_status)
    assert (transition.event, transition.new_history, transition.order.reason) == (None, (), None)
    assert transition.order.version == order.version + 1


def test_the_payment_status_never_moves_back() -> None:
    refunded_first = domain.record_refund(cancelled_order(), LATER)  # the refund overtook its charge
    assert refunded_first is not None
    assert domain.confirm(refunded_first.order, PAYMENT, "c", LATER) is None
    assert domain.record_refund(refunded_first.order, LATER) is None
    paid_then_cancelled = domain.cancel(confirmed_order(), "c", LATER)
    assert paid_then_cancelled is not None
    refunded = domain.record_refund(paid_then_cancelled.order, LATER)
    assert refunded is not None
    assert refunded.order.payment_status is PaymentStatus.REFUNDED
    assert domain.reject_for_payment(refunded.order, DECLINE, "c", LATER) is None


@pytest.mark.parametrize("first", ["pending", "confirmed"])
def test_cancel_from_pending_or_confirmed_then_no_op(first: str) -> None:
    order = pending_order() if first == "pending" else confirmed_order()
    transition = domain.cancel(order, "c3", LATER)
    assert transition is not None
    assert transition.order.status is OrderStatus.CANCELLED
    assert (transition.order.total_cents, transition.order.payment_status) == (
        order.total_cents,
        order.payment_status,
    )
    assert (transition.from_version, transition.order.version) == (order.version, order.version + 1)
    assert transition.event is not None
    assert isinstance(transition.event.data, OrderCancelledData)
    assert transition.event.data.items == list(order.items)
    assert domain.cancel(transition.order, "c3", LATER) is None
    confirmed_late = domain.confirm(transition.order, PAYMENT, "c", LATER)  # no resurrection
    assert confirmed_late is None or confirmed_late.order.status is OrderStatus.CANCELLED


def test_rejected_order_is_not_cancellable() -> None:
    rejected = domain.reject_for_stock(pending_order(), REJECTION, "c", LATER)
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
