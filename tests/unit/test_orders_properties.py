"""Properties of the orders domain, checked on generated inputs (hypothesis): the lifecycle and
the payment status under any sequence of inventory and payment events and cancels,
Idempotency-Key replays, and pagination cursors."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orders import domain
from orders.domain import NewOrder, OrderStatus, PagePosition, PaymentStatus
from shop_common.events import (
    InventoryRejectedData,
    InventoryReservedData,
    PaymentFailedData,
    PaymentSucceededData,
    PricedLine,
)

NOW = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
FEW = settings(max_examples=60, deadline=None)

skus = st.from_regex(r"\A[A-Za-z0-9_-]{1,8}\Z")
user_ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,12}\Z")
payment_methods = st.from_regex(r"\A[A-Za-z0-9_]{1,12}\Z")
items = st.lists(
    st.fixed_dictionaries({"sku": skus, "quantity": st.integers(1, 1000)}),
    min_size=1,
    max_size=4,
    unique_by=lambda item: item["sku"],
)
requests = st.builds(
    lambda lines, payment_method: NewOrder.model_validate({"items": lines, "payment_method": payment_method}),
    items,
    payment_methods,
)

RESERVE, REJECT, PAY, DECLINE, CANCEL, REFUND = "reserve", "reject", "pay", "decline", "cancel", "refund"
decisions = st.lists(
    st.one_of(
        st.tuples(st.just(RESERVE), st.integers(0, 10**9)),
        st.tuples(st.just(REJECT), st.text(min_size=1, max_size=20)),
        st.tuples(st.just(PAY), st.integers(0, 10**9)),
        st.tuples(st.just(DECLINE), st.text(min_size=1, max_size=20)),
        st.tuples(st.just(CANCEL), st.none()),
        st.tuples(st.just(REFUND), st.none()),
    ),
    max_size=10,
)
ALLOWED_MOVES = {
    (OrderStatus.PENDING, OrderStatus.CONFIRMED),
    (OrderStatus.PENDING, OrderStatus.REJECTED),
    (OrderStatus.PENDING, OrderStatus.CANCELLED),
    (OrderStatus.CONFIRMED, OrderStatus.CANCELLED),
}
# The payment status only moves forward: none -> succeeded -> refunded, none -> failed, none -> refunded.
PAYMENT_STATUS_MOVES = {
    (None, PaymentStatus.SUCCEEDED),
    (None, PaymentStatus.FAILED),
    (None, PaymentStatus.REFUNDED),
    (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED),
}


def decide(order: domain.Order, decision: tuple[str, Any], now: datetime) -> domain.Transition | None:
    kind, value = decision
    if kind == RESERVE:
        reservation = InventoryReservedData(
            order_id=order.order_id,
            lines=[PricedLine(sku=line.sku, quantity=line.quantity, unit_price_cents=0) for line in order.items],
            total_cents=value,
        )
        return domain.record_total(order, reservation, now)
    if kind == REJECT:
        rejection = InventoryRejectedData(order_id=order.order_id, reason=value, unavailable=[])
        return domain.reject_for_stock(order, rejection, "c", now)
    if kind == PAY:
        payment = PaymentSucceededData(order_id=order.order_id, payment_id="pi", amount_cents=value, currency="usd")
        return domain.confirm(order, payment, "c", now)
    if kind == DECLINE:
        failure = PaymentFailedData(order_id=order.order_id, reason=value, decline_code=None)
        return domain.reject_for_payment(order, failure, "c", now)
    if kind == REFUND:
        return domain.record_refund(order, now)
    return domain.cancel(order, "c", now)


@FEW
@given(request=requests, sequence=decisions)
def test_any_sequence_of_decisions_follows_the_lifecycle(request: NewOrder, sequence: list[tuple[str, Any]]) -> None:
    order, _ = domain.place_order("u1", request, "o-1", "c", NOW)
    for step, decision in enumerate(sequence, start=1):
        before = order
        try:
            transition = decide(before, decision, NOW + timedelta(seconds=step))
        except domain.NotCancellable:
            assert (decision[0], before.status) == (CANCEL, OrderStatus.REJECTED)
            continue
        if transition is None:  # a duplicate or late decision changes nothing
            continue
        order = transition.order
        kind, value = decision
        assert transition.before == before
        assert (transition.from_version, order.version, order.updated_at) == (
            before.version,
            before.version + 1,
            NOW + timedelta(seconds=step),
        )
        if order.status is before.status:  # a change no other service hears of
            assert (transition.event, transition.new_history) == (None, ())
        else:
            assert (before.status, order.status) in ALLOWED_MOVES
            assert transition.event is not None
            assert transition.event.data.order_id == order.order_id
            assert order.history[:-1] == before.history
            assert (order.history[-1].status, order.history[-1].at) == (order.status, order.updated_at)
        if order.payment_status is not before.payment_status:
            assert (before.payment_status, order.payment_status) in PAYMENT_STATUS_MOVES
        if before.total_cents is not None:  # once known, the total stays
            assert order.total_cents == before.total_cents
        elif kind in (RESERVE, PAY) and order.total_cents is not None:
            assert order.total_cents == value
        if order.status is OrderStatus.CONFIRMED:  # only a payment confirms, and the total is then known
            assert order.payment_status in (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED)
            assert order.total_cents is not None
        if before.status is OrderStatus.PENDING and order.status is OrderStatus.REJECTED:  # says why
            assert order.reason is not None and value in order.reason
        else:
            assert order.reason == before.reason
        assert (order.order_id, order.user_id, order.items) == (before.order_id, before.user_id, before.items)
    assert len(order.history) <= order.version + 1
    assert [entry.status for entry in order.history] in (
        [OrderStatus.PENDING],
        [OrderStatus.PENDING, OrderStatus.CONFIRMED],
        [OrderStatus.PENDING, OrderStatus.REJECTED],
        [OrderStatus.PENDING, OrderStatus.CANCELLED],
        [OrderStatus.PENDING, OrderStatus.CONFIRMED, OrderStatus.CANCELLED],
    )
    assert order.version <= 4  # what MAX_TRANSITION_ATTEMPTS counts on


@FEW
@given(placed_by=user_ids, placed_as=requests, retried_by=user_ids, retried_as=requests)
def test_a_replay_returns_the_order_exactly_when_the_request_is_the_same(
    placed_by: str, placed_as: NewOrder, retried_by: str, retried_as: NewOrder
) -> None:
    placed, _ = domain.place_order(placed_by, placed_as, "o-1", "c", NOW)
    assert domain.replay(placed, placed_by, placed_as) is placed
    if (retried_by, retried_as) == (placed_by, placed_as):
        assert domain.replay(placed, retried_by, retried_as) is placed
    else:
        with pytest.raises(domain.IdempotencyKeyReused):
            domain.replay(placed, retried_by, retried_as)


@FEW
@given(
    first=st.tuples(st.text(max_size=10), st.text(min_size=1, max_size=10)),
    second=st.tuples(st.text(max_size=10), st.text(min_size=1, max_size=10)),
)
def test_two_scoped_keys_derive_the_same_order_id_only_if_they_are_equal(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    same_id = domain.IdempotencyKey(*first).order_id() == domain.IdempotencyKey(*second).order_id()
    assert same_id == (first == second)


positions = st.builds(
    PagePosition,
    created_at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)).map(
        lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    ),
    order_id=st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"),
)


@FEW
@given(position=positions)
def test_an_issued_cursor_decodes_to_its_position_and_checks_against_it(position: PagePosition) -> None:
    claimed = domain.decode_cursor(domain.encode_cursor(position))
    assert claimed == position
    assert domain.check_cursor(claimed, position) == position


def as_cursor(content: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(content).encode()).decode().rstrip("=")


any_moment = st.datetimes(
    timezones=st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda minutes: timezone(timedelta(minutes=minutes)))
)


@FEW
@given(
    cursor=st.one_of(
        st.text(max_size=80),
        st.builds(lambda moment, order_id: as_cursor({"t": moment.isoformat(), "id": order_id}), any_moment, st.text()),
        st.builds(as_cursor, st.dictionaries(st.sampled_from(["t", "id", "x"]), st.text() | st.integers())),
    ),
    stored=positions,
)
def test_any_other_cursor_is_refused_as_invalid_and_nothing_else(cursor: str, stored: PagePosition) -> None:
    """Whatever a client sends, the answer is a position that a stored order vouches for or
    InvalidCursor (422): never another error, and never a position taken from the cursor."""
    try:
        checked = domain.check_cursor(domain.decode_cursor(cursor), stored)
    except domain.InvalidCursor:
        return
    assert checked is stored
