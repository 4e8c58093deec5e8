"""The payments state machine, pure: events in, provider steps out, provider answers recorded,
the lease; and its properties under any order of deliveries, duplicates and interrupted
invocations (hypothesis), against a model of what the provider does with each step."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from payments import domain
from payments.domain import (
    LEASE,
    MAX_CHARGE_CENTS,
    CancelIntent,
    Charged,
    ConfirmIntent,
    ConsumedEvent,
    CreateIntent,
    Declined,
    IntentCancelled,
    IntentCreated,
    NeedsAuthentication,
    Outcome,
    Payment,
    PaymentBusy,
    PaymentStatus,
    ProviderAction,
    RefundCharge,
    Refunded,
    Transition,
)
from shop_common.events import parse_event

NOW = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
ORDER = "order-1"


def event(event_type: str, source: str, data: dict[str, Any], correlation_id: str = "corr-1") -> ConsumedEvent:
    body = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "event_version": 1,
        "occurred_at": "2026-11-23T05:00:00.000Z",
        "correlation_id": correlation_id,
        "source": source,
        "data": data,
    }
    parsed = parse_event(json.dumps(body))
    assert isinstance(parsed, ConsumedEvent)
    return parsed


def placed(payment_method: str = "pm_card_visa") -> ConsumedEvent:
    data = {
        "order_id": ORDER,
        "user_id": "u1",
        "items": [{"sku": "A", "quantity": 1}],
        "payment_method": payment_method,
    }
    return event("OrderPlaced", "orders", data)


def reserved(total: int = 5199) -> ConsumedEvent:
    data = {"order_id": ORDER, "lines": [{"sku": "A", "quantity": 1, "unit_price_cents": 0}], "total_cents": total}
    return event("InventoryReserved", "inventory", data)


def cancelled() -> ConsumedEvent:
    data = {"order_id": ORDER, "user_id": "u1", "items": [{"sku": "A", "quantity": 1}]}
    return event("OrderCancelled", "orders", data, "corr-cancel")


def applied(payment: Payment | None, transition: Transition | None) -> Payment | None:
    """The payment after ``transition``; a transition is always decided on the current version."""
    if transition is None:
        return payment
    assert transition.from_version == (payment.version if payment else 0)
    assert transition.payment.version == transition.from_version + 1
    return transition.payment


def deliver(payment: Payment | None, *events: ConsumedEvent, currency: str = "usd") -> Payment | None:
    for consumed in events:
        payment = applied(payment, domain.on_event(payment, consumed, currency, NOW))
    return payment


def charging() -> Payment:
    payment = deliver(None, placed(), reserved())
    assert payment is not None
    return payment


def answered(payment: Payment, outcome: Outcome) -> Transition:
    transition = domain.on_outcome(payment, outcome, "corr-x", NOW)
    assert transition is not None
    return transition


def event_types(transition: Transition) -> list[str]:
    return [str(e.model_dump()["event_type"]) for e in transition.events]


# ---------- events in ----------


@pytest.mark.parametrize("first_two", [(placed(), reserved()), (reserved(), placed())], ids=["placed", "reserved"])
def test_method_and_amount_in_either_order_start_the_charge(first_two: tuple[ConsumedEvent, ConsumedEvent]) -> None:
    first = deliver(None, first_two[0])
    assert first is not None
    assert first.status in (PaymentStatus.AWAITING_RESERVATION, PaymentStatus.AWAITING_METHOD)
    assert domain.next_action(first) is None

    payment = deliver(first, first_two[1], currency="eur")
    assert payment is not None
    assert payment.status is PaymentStatus.CHARGING
    assert domain.next_action(payment) == CreateIntent(ORDER, 5199, "eur", "pm_card_visa")
    assert [entry.status for entry in payment.history] == [first.status, PaymentStatus.CHARGING]


def test_duplicates_change_nothing() -> None:
    payment = charging()
    for duplicate in (placed(), reserved()):
        assert domain.on_event(payment, duplicate, "usd", NOW) is None


@pytest.mark.parametrize("total", [0, MAX_CHARGE_CENTS + 1, 5_000_000_000_000])
def test_a_total_the_provider_cannot_charge_fails_without_a_provider_step(total: int) -> None:
    payment = deliver(None, placed())
    transition = domain.on_event(payment, reserved(total), "usd", NOW)
    assert transition is not None
    assert transition.payment.status is PaymentStatus.FAILED
    assert domain.next_action(transition.payment) is None
    [failed] = transition.events
    assert failed.model_dump()["data"]["decline_code"] is None
    assert str(total) in failed.model_dump()["data"]["reason"]


def test_the_largest_chargeable_total_is_charged() -> None:
    payment = deliver(None, placed(), reserved(MAX_CHARGE_CENTS))
    assert payment is not None
    assert payment.status is PaymentStatus.CHARGING


@pytest.mark.parametrize("before", [(), (placed(),), (reserved(),)], ids=["nothing", "placed", "reserved"])
def test_a_cancel_before_the_charge_ends_the_payment_and_stays(before: tuple[ConsumedEvent, ...]) -> None:
    payment = deliver(None, *before, cancelled())
    assert payment is not None
    assert payment.status is PaymentStatus.CANCELLED_BEFORE_CHARGE
    assert deliver(payment, placed(), reserved(), cancelled()) == payment  # the tombstone
    assert domain.next_action(payment) is None


def test_a_cancel_before_the_intent_is_recorded_ends_the_payment() -> None:
    payment = deliver(charging(), cancelled())
    assert payment is not None
    assert payment.status is PaymentStatus.CANCELLED_BEFORE_CHARGE
    # the intent being created meanwhile is never recorded, so never confirmed
    assert domain.on_outcome(payment, IntentCreated("pi_1"), "c", NOW) is None


def test_a_cancel_during_the_charge_cancels_the_intent() -> None:
    with_intent = applied(charging(), answered(charging(), IntentCreated("pi_1")))
    assert with_intent is not None
    assert domain.next_action(with_intent) == ConfirmIntent(ORDER, "pi_1")

    payment = deliver(with_intent, cancelled())
    assert payment is not None
    assert (payment.status, payment.cancel_requested) == (PaymentStatus.CHARGING, True)
    assert domain.next_action(payment) == CancelIntent(ORDER, "pi_1")
    assert deliver(payment, cancelled()) == payment

    stopped = answered(payment, IntentCancelled())
    assert (stopped.payment.status, stopped.events) == (PaymentStatus.CANCELLED_BEFORE_CHARGE, ())


def test_charged_while_being_cancelled_is_announced_then_refunded() -> None:
    payment = deliver(applied(charging(), answered(charging(), IntentCreated("pi_1"))), cancelled())
    assert payment is not None
    charged = answered(payment, Charged("pi_1"))
    assert charged.payment.status is PaymentStatus.REFUNDING
    assert event_types(charged) == ["PaymentSucceeded"]
    assert domain.next_action(charged.payment) == RefundCharge(ORDER, "pi_1", 5199, "usd")

    refunded = answered(charged.payment, Refunded("re_1", 5199, "usd"))
    assert refunded.payment.status is PaymentStatus.REFUNDED
    [event] = refunded.events
    assert event.model_dump()["data"] == {
        "order_id": ORDER,
        "refund_id": "re_1",
        "amount_cents": 5199,
        "currency": "usd",
    }


def test_a_charge_succeeds_once() -> None:
    payment = applied(charging(), answered(charging(), IntentCreated("pi_1")))
    assert payment is not None
    succeeded = answered(payment, Charged("pi_1"))
    assert succeeded.payment.status is PaymentStatus.SUCCEEDED
    [event] = succeeded.events
    data = event.model_dump()["data"]
    assert data == {"order_id": ORDER, "payment_id": "pi_1", "amount_cents": 5199, "currency": "usd"}
    assert event.correlation_id == "corr-x"
    for late in (Charged("pi_1"), Declined("no", "x"), IntentCancelled(), IntentCreated("pi_2")):
        assert domain.on_outcome(succeeded.payment, late, "c", NOW) is None


@pytest.mark.parametrize(
    ("outcome", "reason", "code"),
    [
        (Declined("Your card was declined.", "insufficient_funds"), "Your card was declined.", "insufficient_funds"),
        (NeedsAuthentication(), domain.NEEDS_AUTHENTICATION_REASON, None),
        (IntentCancelled(), domain.CANCELLED_AT_PROVIDER_REASON, None),
    ],
    ids=["declined", "3-D Secure", "cancelled at the provider"],
)
def test_a_payment_that_did_not_go_through_fails_with_its_reason(
    outcome: Outcome, reason: str, code: str | None
) -> None:
    payment = applied(charging(), answered(charging(), IntentCreated("pi_1")))
    assert payment is not None
    failed = answered(payment, outcome)
    assert failed.payment.status is PaymentStatus.FAILED
    [event] = failed.events
    assert event.model_dump()["data"] == {"order_id": ORDER, "reason": reason, "decline_code": code}
    assert deliver(failed.payment, cancelled()) == failed.payment  # nothing to refund


def test_a_cancel_after_the_charge_asks_for_a_refund_once() -> None:
    payment = applied(charging(), answered(charging(), IntentCreated("pi_1")))
    assert payment is not None
    succeeded = answered(payment, Charged("pi_1")).payment
    refunding = deliver(succeeded, cancelled())
    assert refunding is not None
    assert refunding.status is PaymentStatus.REFUNDING
    assert deliver(refunding, cancelled()) == refunding
    refunded = answered(refunding, Refunded("re_1", 5199, "usd")).payment
    assert domain.on_outcome(refunded, Refunded("re_2", 5199, "usd"), "c", NOW) is None


# ---------- the lease ----------


def test_the_lease_is_one_actors_until_it_expires() -> None:
    payment = charging()
    mine = domain.take_lease(payment, "me", NOW)
    assert mine is not None
    held = mine.payment
    assert domain.take_lease(held, "me", NOW) is None
    with pytest.raises(PaymentBusy):
        domain.take_lease(held, "you", NOW + LEASE - timedelta(milliseconds=1))
    theirs = domain.take_lease(held, "you", NOW + LEASE)
    assert theirs is not None
    assert theirs.payment.lease is not None and theirs.payment.lease.holder == "you"

    assert domain.release_lease(held, "you", NOW) is None
    released = domain.release_lease(held, "me", NOW)
    assert released is not None and released.payment.lease is None


def test_the_lease_stays_while_the_provider_has_work_and_goes_when_it_has_none() -> None:
    taken = domain.take_lease(charging(), "me", NOW)
    assert taken is not None
    created = answered(taken.payment, IntentCreated("pi_1"))
    assert created.payment.lease == taken.payment.lease
    assert answered(created.payment, Charged("pi_1")).payment.lease is None
    # a cancel that leaves the provider nothing to do takes a stopped actor's lease with it
    assert deliver(taken.payment, cancelled()) == replace(
        taken.payment,
        status=PaymentStatus.CANCELLED_BEFORE_CHARGE,
        lease=None,
        version=taken.payment.version + 1,
        history=(*taken.payment.history, domain.HistoryEntry(PaymentStatus.CANCELLED_BEFORE_CHARGE, NOW)),
        correlation_id="corr-cancel",  # what the payment announces from now on belongs to the cancel's flow
    )


# ---------- properties ----------


@dataclass
class ProviderModel:
    """What the provider does with each step, as the adapter reports it (payments.provider): an
    intent is charged at most once, a refund is looked up before one is made. Counts the money."""

    card: str
    intents: dict[str, str] = field(default_factory=dict)  # id -> requires_confirmation, succeeded, ...
    confirmed: list[str] = field(default_factory=list)
    refunds: Counter[str] = field(default_factory=Counter)

    def perform(self, action: ProviderAction) -> Outcome:
        if isinstance(action, CreateIntent):
            intent_id = f"pi_{len(self.intents)}"  # a new one every time, as localstripe does
            self.intents[intent_id] = "requires_confirmation"
            return IntentCreated(intent_id)
        if isinstance(action, RefundCharge):
            assert self.intents[action.intent_id] == "succeeded"
            if not self.refunds[action.intent_id]:
                self.refunds[action.intent_id] += 1
            return Refunded(f"re_{action.intent_id}", 5199, "usd")
        status = self.intents[action.intent_id]
        if status == "requires_confirmation":
            if isinstance(action, CancelIntent):
                status = "canceled"
            else:
                self.confirmed.append(action.intent_id)
                status = {"ok": "succeeded", "declined": "requires_payment_method", "3ds": "canceled"}[self.card]
                if self.card == "3ds":
                    self.intents[action.intent_id] = status
                    return NeedsAuthentication()
        elif status == "requires_payment_method" and isinstance(action, CancelIntent):
            status = "canceled"
        self.intents[action.intent_id] = status
        if status == "succeeded":
            return Charged(action.intent_id)
        if status == "canceled":
            return IntentCancelled()
        return Declined("Your card was declined.", "card_declined")


EVENTS: dict[str, Callable[[], ConsumedEvent]] = {"placed": placed, "reserved": reserved, "cancelled": cancelled}
# OrderPlaced and InventoryReserved, maybe OrderCancelled, some of them again, in any order.
deliveries = st.tuples(st.booleans(), st.lists(st.sampled_from(sorted(EVENTS)), max_size=4)).flatmap(
    lambda drawn: st.permutations(["placed", "reserved", *(["cancelled"] if drawn[0] else []), *drawn[1]])
)
# After each delivery, how its invocation ends: having driven the provider to the end, or stopped
# after n provider steps (a timeout, a crash), its last answer lost if it stopped mid-step.
endings = st.sampled_from([None, *((steps, lost) for steps in range(3) for lost in (False, True))])


@dataclass
class Run:
    provider: ProviderModel
    payment: Payment | None = None
    now: datetime = NOW
    published: list[Any] = field(default_factory=list)

    def store(self, transition: Transition | None) -> None:
        self.payment = applied(self.payment, transition)
        if transition is not None:
            self.published.extend(transition.events)

    def deliver(self, consumed: ConsumedEvent) -> None:
        self.store(domain.on_event(self.payment, consumed, "usd", self.now))

    def invocation(self, ending: tuple[int, bool] | None) -> None:
        """One invocation's provider work, as service.PaymentsService drives it."""
        holder = str(uuid.uuid4())
        steps = 0
        while (action := domain.next_action(self.payment)) is not None:
            assert self.payment is not None
            self.store(domain.take_lease(self.payment, holder, self.now))
            if ending is not None and steps == ending[0] and not ending[1]:
                self.now += LEASE  # stopped holding the lease: the next one waits for it to expire
                return
            outcome = self.provider.perform(action)
            if ending is not None and steps == ending[0]:
                self.now += LEASE  # the provider acted, the answer never recorded
                return
            self.store(domain.on_outcome(self.payment, outcome, "corr", self.now))
            steps += 1
        assert self.payment is None or self.payment.lease is None  # nothing left to do, nothing leased


@settings(max_examples=500, deadline=None)
# cancelled once the intent is recorded, by an invocation that stopped before confirming it
@example(names=["placed", "reserved", "cancelled"], endings=[None, (1, False), *[None] * 7], card="ok")
@given(
    names=deliveries,
    endings=st.lists(endings, min_size=9, max_size=9),
    card=st.sampled_from(["ok", "declined", "3ds"]),
)
def test_never_charged_after_a_cancel_and_never_charged_or_refunded_twice(
    names: list[str], endings: list[tuple[int, bool] | None], card: str
) -> None:
    run = Run(ProviderModel(card))
    cancel_delivered = False
    for name, ending in zip(names, endings, strict=False):
        run.deliver(EVENTS[name]())
        cancel_delivered = cancel_delivered or name == "cancelled"
        confirmed_before = len(run.provider.confirmed)
        run.invocation(ending)
        if cancel_delivered:
            assert len(run.provider.confirmed) == confirmed_before  # no confirmation once the cancel is seen
    run.now += LEASE
    run.invocation(None)  # the last redelivery finishes what is left

    charges = [intent for intent, status in run.provider.intents.items() if status == "succeeded"]
    published = Counter(str(event.model_dump()["event_type"]) for event in run.published)
    assert len(run.provider.confirmed) <= 1
    assert len(charges) <= 1
    assert all(count == 1 for count in run.provider.refunds.values())
    assert all(count == 1 for count in published.values())
    assert not (published["PaymentSucceeded"] and published["PaymentFailed"])
    assert published["PaymentSucceeded"] == len(charges)
    assert published["PaymentRefunded"] == sum(run.provider.refunds.values())

    payment = run.payment
    assert payment is not None
    assert domain.next_action(payment) is None
    assert payment.lease is None
    if cancel_delivered:
        assert payment.status in (PaymentStatus.CANCELLED_BEFORE_CHARGE, PaymentStatus.FAILED, PaymentStatus.REFUNDED)
        assert sum(run.provider.refunds.values()) == len(charges)  # every charge of a cancelled order refunded
    else:
        expected = {"ok": PaymentStatus.SUCCEEDED, "declined": PaymentStatus.FAILED, "3ds": PaymentStatus.FAILED}
        assert payment.status is expected[card]
        assert len(charges) == (card == "ok")


def test_the_property_runs_cover_interrupted_charges() -> None:
    """The model is exercised: a stopped invocation leaves work that the next one finishes."""
    run = Run(ProviderModel("ok"))
    run.deliver(placed())
    run.deliver(reserved())
    run.invocation((1, True))  # intent created; confirmed, and the answer lost
    assert run.provider.confirmed and run.payment is not None and run.payment.status is PaymentStatus.CHARGING
    run.invocation(None)
    assert run.payment is not None and run.payment.status is PaymentStatus.SUCCEEDED
    assert len(run.provider.confirmed) == 1
