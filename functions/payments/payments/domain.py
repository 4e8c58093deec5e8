"""Payments domain: one payment per order, its state machine, and the provider steps it asks
for. Pure, no I/O.

A payment learns its method and user (OrderPlaced) and its amount (InventoryReserved) in either
order, and is charged once it knows both. An order that ends without being paid for (OrderCancelled,
or OrderRejected: its stock, its payment or its deadline) withdraws the payment: seen before the
charge started, or before a payment intent exists, it ends the payment without a charge (arriving
first, it leaves a tombstone); seen during the charge, it is remembered and the intent cancelled if
still possible, else refunded; seen after the charge, it is refunded. Every change is a ``Transition`` decided on
the payment at one version and stored only while the payment is still at that version
(compare-and-set), together with the events announcing it.

The provider acts only for the holder of the payment's lease, one actor at a time, so a refund is
never asked for twice at once. What the provider answers (an ``Outcome``) is a fact and is
recorded whoever holds the lease then.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shop_common.events import (
    InventoryReserved,
    OrderCancelled,
    OrderPlaced,
    OrderRejected,
    PaymentFailed,
    PaymentFailedData,
    PaymentRefunded,
    PaymentRefundedData,
    PaymentSucceeded,
    PaymentSucceededData,
    new_event,
)

# Stripe charges at most $999,999.99 (99,999,999 cents) at once; the contract allows totals far
# above. Larger orders fail at once rather than being offered to the provider again and again.
MAX_CHARGE_CENTS = 99_999_999
# How long the provider is left to one actor. Longer than the function's timeout (the actor is
# stopped by then) and shorter than the queue's visibility timeout (a retry finds it expired).
LEASE = timedelta(seconds=90)

PaymentEvent = PaymentSucceeded | PaymentFailed | PaymentRefunded
ConsumedEvent = OrderPlaced | InventoryReserved | OrderCancelled | OrderRejected


class PaymentStatus(StrEnum):
    AWAITING_RESERVATION = "AWAITING_RESERVATION"  # method known, amount not yet
    AWAITING_METHOD = "AWAITING_METHOD"  # amount known, method not yet
    CHARGING = "CHARGING"  # both known: a payment intent is created, then confirmed
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED_BEFORE_CHARGE = "CANCELLED_BEFORE_CHARGE"
    REFUNDING = "REFUNDING"  # charged, and the order was cancelled
    REFUNDED = "REFUNDED"


# A payment in one of these states still needs the provider (see next_action); no other does.
UNFINISHED = frozenset({PaymentStatus.CHARGING, PaymentStatus.REFUNDING})


class PaymentBusy(Exception):
    """Another actor holds the payment's lease and the provider still has work to do: try again
    once the lease has ended (``until``)."""

    def __init__(self, order_id: str, until: datetime) -> None:
        super().__init__(f"Payment of order {order_id} is being handled by another invocation; retrying later")
        self.until = until


class ProviderUnavailable(Exception):
    """The provider could not be asked, or its answer is not known yet: ask again later."""


class ProviderMisconfigured(ProviderUnavailable):
    """The provider refused this service's credentials or settings: nothing a retry changes until
    someone fixes them (an alarm says so); the payment waits for it."""


@dataclass(frozen=True)
class Lease:
    holder: str
    until: datetime


@dataclass(frozen=True)
class HistoryEntry:
    status: PaymentStatus
    at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class Payment:
    order_id: str
    status: PaymentStatus
    created_at: datetime
    updated_at: datetime
    user_id: str | None = None
    payment_method: str | None = None
    amount_cents: int | None = None
    currency: str | None = None  # fixed when the charge starts: a refund is in the charge's currency
    cancel_requested: bool = False  # the order was cancelled while its charge was in progress
    intent_id: str | None = None  # recorded before the intent is confirmed
    refund_id: str | None = None
    failure_reason: str | None = None
    decline_code: str | None = None
    lease: Lease | None = None
    history: tuple[HistoryEntry, ...] = ()
    # The flow the payment's latest event belongs to: what a resumed payment announces under.
    correlation_id: str | None = None
    version: int = 1  # counts changes; a change is stored only on the version it was decided on


@dataclass(frozen=True)
class Transition:
    """The payment as it will be, decided on the payment at ``from_version`` (0: there was none,
    so it is inserted), and the events announcing the change."""

    payment: Payment
    from_version: int
    events: tuple[PaymentEvent, ...] = ()


# ---------- what the provider is asked to do ----------


@dataclass(frozen=True)
class CreateIntent:
    order_id: str
    amount_cents: int
    currency: str
    payment_method: str


@dataclass(frozen=True)
class ConfirmIntent:
    order_id: str
    intent_id: str


@dataclass(frozen=True)
class CancelIntent:
    order_id: str
    intent_id: str


@dataclass(frozen=True)
class RefundCharge:
    order_id: str
    intent_id: str
    amount_cents: int  # what was charged
    currency: str


ProviderAction = CreateIntent | ConfirmIntent | CancelIntent | RefundCharge


# ---------- what the provider answered ----------


@dataclass(frozen=True)
class IntentCreated:
    intent_id: str


@dataclass(frozen=True)
class Charged:
    intent_id: str


@dataclass(frozen=True)
class Declined:
    reason: str
    decline_code: str | None


@dataclass(frozen=True)
class NeedsAuthentication:
    """The payment needed the customer (3-D Secure); the provider's intent was cancelled."""


@dataclass(frozen=True)
class IntentCancelled:
    pass


@dataclass(frozen=True)
class Refunded:
    refund_id: str
    amount_cents: int
    currency: str


Outcome = IntentCreated | Charged | Declined | NeedsAuthentication | IntentCancelled | Refunded

NEEDS_AUTHENTICATION_REASON = (
    "The payment needs the customer to authenticate it (3-D Secure), which this checkout cannot ask for."
)
CANCELLED_AT_PROVIDER_REASON = "The payment was cancelled at the provider before it was charged."
NOTHING_TO_CHARGE_REASON = "The order's total is 0 cents: there is nothing to charge."


def too_large_reason(amount_cents: int) -> str:
    return (
        f"The order's total of {amount_cents} cents is above {MAX_CHARGE_CENTS} cents, "
        "the most the payment provider charges at once."
    )


# ---------- events in ----------


def on_event(payment: Payment | None, event: ConsumedEvent, currency: str, now: datetime) -> Transition | None:
    """What an event changes; None when it changes nothing (a duplicate, or too late to matter)."""
    if isinstance(event, OrderPlaced):
        transition = _on_placed(payment, event, currency, now)
    elif isinstance(event, InventoryReserved):
        transition = _on_reserved(payment, event, currency, now)
    else:
        transition = _on_withdrawn(payment, event.data.order_id, event.data.user_id, now)
    if transition is None:
        return None
    return _unleased_when_settled(
        replace(transition, payment=replace(transition.payment, correlation_id=event.correlation_id))
    )


def _on_placed(payment: Payment | None, event: OrderPlaced, currency: str, now: datetime) -> Transition | None:
    placed = event.data
    if payment is None:
        return _created(
            placed.order_id,
            PaymentStatus.AWAITING_RESERVATION,
            now,
            user_id=placed.user_id,
            payment_method=placed.payment_method,
        )
    if payment.status is not PaymentStatus.AWAITING_METHOD:
        return None
    known = replace(payment, user_id=placed.user_id, payment_method=placed.payment_method)
    return _start_charge(known, payment.version, currency, event.correlation_id, now)


def _on_reserved(payment: Payment | None, event: InventoryReserved, currency: str, now: datetime) -> Transition | None:
    reserved = event.data
    if payment is None:
        return _created(reserved.order_id, PaymentStatus.AWAITING_METHOD, now, amount_cents=reserved.total_cents)
    if payment.status is not PaymentStatus.AWAITING_RESERVATION:
        return None
    known = replace(payment, amount_cents=reserved.total_cents)
    return _start_charge(known, payment.version, currency, event.correlation_id, now)


def _on_withdrawn(payment: Payment | None, order_id: str, user_id: str, now: datetime) -> Transition | None:
    """The order was cancelled or rejected: it must not stay charged."""
    if payment is None:  # the tombstone: a late OrderPlaced or InventoryReserved starts nothing
        return _created(order_id, PaymentStatus.CANCELLED_BEFORE_CHARGE, now, user_id=user_id)
    status = payment.status
    if status in (PaymentStatus.AWAITING_RESERVATION, PaymentStatus.AWAITING_METHOD):
        return _to(payment, PaymentStatus.CANCELLED_BEFORE_CHARGE, now)
    if status is PaymentStatus.CHARGING and payment.intent_id is None:
        # Nothing can be charged without a recorded intent (an intent being created right now is
        # never confirmed: confirming needs the recorded id, and this payment is over).
        return _to(payment, PaymentStatus.CANCELLED_BEFORE_CHARGE, now)
    if status is PaymentStatus.CHARGING and not payment.cancel_requested:
        return Transition(_changed(payment, now, cancel_requested=True), payment.version)
    if status is PaymentStatus.SUCCEEDED:
        return _to(payment, PaymentStatus.REFUNDING, now)
    return None


def _start_charge(payment: Payment, from_version: int, currency: str, correlation_id: str, now: datetime) -> Transition:
    """Method and amount are both known: charge, unless the amount cannot be charged at all."""
    amount = payment.amount_cents
    assert amount is not None
    if amount == 0:
        return _failed(payment, from_version, NOTHING_TO_CHARGE_REASON, None, correlation_id, now)
    if amount > MAX_CHARGE_CENTS:
        return _failed(payment, from_version, too_large_reason(amount), None, correlation_id, now)
    charging = _moved(payment, PaymentStatus.CHARGING, now, currency=currency)
    return Transition(charging, from_version)


# ---------- the provider's turn ----------


def next_action(payment: Payment | None) -> ProviderAction | None:
    """What the provider must do next for the payment; None when nothing."""
    if payment is None:
        return None
    if payment.status is PaymentStatus.CHARGING:
        if payment.intent_id is None:
            assert payment.amount_cents is not None and payment.currency and payment.payment_method
            return CreateIntent(payment.order_id, payment.amount_cents, payment.currency, payment.payment_method)
        if payment.cancel_requested:
            return CancelIntent(payment.order_id, payment.intent_id)
        return ConfirmIntent(payment.order_id, payment.intent_id)
    if payment.status is PaymentStatus.REFUNDING:
        assert payment.intent_id is not None and payment.amount_cents is not None and payment.currency
        return RefundCharge(payment.order_id, payment.intent_id, payment.amount_cents, payment.currency)
    return None


def take_lease(payment: Payment, holder: str, now: datetime) -> Transition | None:
    """Lease the provider work to ``holder``; None if it holds a live lease already. Raises
    PaymentBusy while another actor's lease is live."""
    lease = payment.lease
    if lease is not None and lease.until > now:
        if lease.holder == holder:
            return None
        raise PaymentBusy(payment.order_id, lease.until)
    return Transition(_changed(payment, now, lease=Lease(holder, now + LEASE)), payment.version)


def release_lease(payment: Payment, holder: str, now: datetime) -> Transition | None:
    if payment.lease is None or payment.lease.holder != holder:
        return None
    return Transition(_changed(payment, now, lease=None), payment.version)


def on_outcome(payment: Payment, outcome: Outcome, correlation_id: str, now: datetime) -> Transition | None:
    """Record what the provider answered; None if the payment has moved past it. The holder of
    the lease keeps it while the provider has more to do."""
    return _unleased_when_settled(_apply_outcome(payment, outcome, correlation_id, now))


def _apply_outcome(payment: Payment, outcome: Outcome, correlation_id: str, now: datetime) -> Transition | None:
    status = payment.status
    if isinstance(outcome, Refunded):
        if status is not PaymentStatus.REFUNDING:
            return None
        refunded = _moved(payment, PaymentStatus.REFUNDED, now, refund_id=outcome.refund_id)
        refund = PaymentRefundedData(
            order_id=payment.order_id,
            refund_id=outcome.refund_id,
            amount_cents=outcome.amount_cents,
            currency=outcome.currency,
        )
        return Transition(refunded, payment.version, (new_event(PaymentRefunded, refund, correlation_id, now),))
    if status is not PaymentStatus.CHARGING:
        return None
    if isinstance(outcome, IntentCreated):
        if payment.intent_id is not None:
            return None
        return Transition(_changed(payment, now, intent_id=outcome.intent_id), payment.version)
    if isinstance(outcome, Charged):
        # Charged while its order was being cancelled: announced, then refunded.
        after = PaymentStatus.REFUNDING if payment.cancel_requested else PaymentStatus.SUCCEEDED
        charged = _moved(payment, after, now, intent_id=outcome.intent_id)
        assert charged.amount_cents is not None and charged.currency is not None
        charge = PaymentSucceededData(
            order_id=payment.order_id,
            payment_id=outcome.intent_id,
            amount_cents=charged.amount_cents,
            currency=charged.currency,
        )
        return Transition(charged, payment.version, (new_event(PaymentSucceeded, charge, correlation_id, now),))
    if isinstance(outcome, Declined):
        return _failed(payment, payment.version, outcome.reason, outcome.decline_code, correlation_id, now)
    if isinstance(outcome, NeedsAuthentication):
        return _failed(payment, payment.version, NEEDS_AUTHENTICATION_REASON, None, correlation_id, now)
    # IntentCancelled: by this service when the order was cancelled, else by someone at the provider.
    if payment.cancel_requested:
        return _to(payment, PaymentStatus.CANCELLED_BEFORE_CHARGE, now)
    return _failed(payment, payment.version, CANCELLED_AT_PROVIDER_REASON, None, correlation_id, now)


# ---------- helpers ----------


def _unleased_when_settled(transition: Transition | None) -> Transition | None:
    """Nothing left for the provider, nothing to lease: whoever held the lease (a live actor
    finding nothing more to do, or a stopped one) it goes with the change."""
    if transition is None or transition.payment.lease is None or next_action(transition.payment) is not None:
        return transition
    return replace(transition, payment=replace(transition.payment, lease=None))


def _created(order_id: str, status: PaymentStatus, now: datetime, **known: Any) -> Transition:
    payment = Payment(
        order_id=order_id, status=status, created_at=now, updated_at=now, history=(HistoryEntry(status, now),)
    )
    return Transition(replace(payment, **known), from_version=0)


def _changed(payment: Payment, now: datetime, **changes: Any) -> Payment:
    return replace(payment, updated_at=now, version=payment.version + 1, **changes)


def _moved(
    payment: Payment, status: PaymentStatus, now: datetime, reason: str | None = None, **changes: Any
) -> Payment:
    entry = HistoryEntry(status, now, reason)
    return _changed(payment, now, status=status, history=(*payment.history, entry), **changes)


def _to(payment: Payment, status: PaymentStatus, now: datetime) -> Transition:
    return Transition(_moved(payment, status, now), payment.version)


def _failed(
    payment: Payment, from_version: int, reason: str, decline_code: str | None, correlation_id: str, now: datetime
) -> Transition:
    failed = _moved(payment, PaymentStatus.FAILED, now, reason=reason, failure_reason=reason, decline_code=decline_code)
    data = PaymentFailedData(order_id=payment.order_id, reason=reason, decline_code=decline_code)
    return Transition(failed, from_version, (new_event(PaymentFailed, data, correlation_id, now),))
