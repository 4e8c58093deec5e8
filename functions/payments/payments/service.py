"""Payments use cases: record what an event says about a payment, then have the provider do
what the payment needs, recording each answer with its events and publishing them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from payments import domain
from payments.domain import (
    ConsumedEvent,
    Outcome,
    Payment,
    PaymentBusy,
    ProviderAction,
    ProviderMisconfigured,
    ProviderUnavailable,
    Transition,
)
from payments.repository import PaymentsRepository
from shop_common.clock import new_id, utc_now
from shop_common.outbox import Outbox
from shop_common.redelivery import RetryLater
from shop_common.runtime import attempts_in_time

logger = Logger(child=True)
metrics = Metrics()  # flushed by the handler's log_metrics

# A compare-and-set is lost only if the payment changed in between; deciding again on the fresh
# payment settles it, and a payment has few changes.
MAX_TRANSITION_ATTEMPTS = 6
# The longest path asks the provider three times (create, confirm, refund); more means something loops.
MAX_PROVIDER_STEPS = 6
# What a payment's stored change counts toward, by the events announcing it: counted where the
# change is stored, so a message delivered again (which changes nothing) counts nothing.
METRIC_OF_EVENT = {
    "PaymentSucceeded": "PaymentsSucceeded",
    "PaymentFailed": "PaymentsFailed",  # declined, or never chargeable: failed for good
    "PaymentRefunded": "PaymentsRefunded",
}


class Provider(Protocol):
    def perform(self, action: ProviderAction) -> Outcome: ...


Decide = Callable[[Payment | None], Transition | None]


@dataclass
class SweepResult:
    resumed: int = 0
    busy: int = 0
    waiting_on_provider: str | None = None  # why the sweep stopped early


class PaymentsService:
    def __init__(
        self, repository: PaymentsRepository, outbox: Outbox, currency: str, provider: Callable[[], Provider]
    ) -> None:
        self.repository = repository
        self.outbox = outbox
        self.currency = currency
        self._provider = provider  # connected at its first use

    def handle(self, event: ConsumedEvent) -> Payment:
        """Record the event, then finish whatever provider work the payment now needs. Work the
        provider cannot do now stays recorded on the payment, and the sweep (``resume_unfinished``)
        finishes it: the message waits (RetryLater) but is not needed for it."""
        order_id = event.data.order_id
        self._change(order_id, lambda payment: domain.on_event(payment, event, self.currency, utc_now()))
        try:
            return self._settle(order_id, event.correlation_id)
        except PaymentBusy as busy:
            wait = (busy.until - utc_now()).total_seconds()
            raise RetryLater(str(busy), resumed_by_owner=True, not_before_seconds=wait) from busy
        except ProviderUnavailable as unavailable:
            raise RetryLater(str(unavailable), resumed_by_owner=True) from unavailable

    def resume_unfinished(self, batch: int) -> SweepResult:
        """Finish the provider work payments were left with (the provider was down, the invocation
        that held a payment stopped), each under the flow it belongs to; stops while the provider
        cannot be asked, or once too little of the invocation is left (the provider says so)."""
        result = SweepResult()
        for order_id in self.repository.unfinished(utc_now(), batch):
            payment = self.repository.get(order_id)
            correlation_id = (payment.correlation_id if payment else None) or new_id()
            try:
                self._settle(order_id, correlation_id)
            except PaymentBusy:
                result.busy += 1  # taken by a consumer meanwhile
                continue
            except ProviderUnavailable as unavailable:
                result.waiting_on_provider = str(unavailable)
                break
            result.resumed += 1
        return result

    def _settle(self, order_id: str, correlation_id: str) -> Payment:
        holder = new_id()
        try:
            return self._drive(order_id, holder, correlation_id)
        except ProviderMisconfigured:
            self._release(order_id, holder)  # a retry need not wait for the lease to expire
            logger.error("The payment provider refused this service's key", extra={"order_id": order_id})
            metrics.add_metric(name="PaymentProviderMisconfigured", unit=MetricUnit.Count, value=1)
            raise
        except Exception:
            self._release(order_id, holder)
            raise

    def _drive(self, order_id: str, holder: str, correlation_id: str) -> Payment:
        def lease(payment: Payment | None) -> Transition | None:
            assert payment is not None
            return domain.take_lease(payment, holder, utc_now()) if domain.next_action(payment) else None

        for _ in range(MAX_PROVIDER_STEPS):
            payment = self._change(order_id, lease)
            assert payment is not None
            action = domain.next_action(payment)
            if action is None:
                return payment
            outcome = self._provider().perform(action)
            logger.info("Provider answered", extra={"order_id": order_id, "action": action, "outcome": outcome})

            def record(payment: Payment | None, outcome: Outcome = outcome) -> Transition | None:
                assert payment is not None
                return domain.on_outcome(payment, outcome, correlation_id, utc_now())

            self._change(order_id, record)
        raise RuntimeError(f"Payment of order {order_id} still needs the provider after {MAX_PROVIDER_STEPS} steps")

    def _change(self, order_id: str, decide: Decide) -> Payment | None:
        """Apply what ``decide`` makes of the stored payment, re-reading it as long as another
        change gets in between; the payment as it is then."""
        for _ in attempts_in_time(MAX_TRANSITION_ATTEMPTS):
            payment = self.repository.get(order_id)
            transition = decide(payment)
            if transition is None:
                return payment
            pending = self.repository.apply(transition)
            if pending is not None:
                for event in transition.events:
                    metrics.add_metric(name=METRIC_OF_EVENT[event.event_type], unit=MetricUnit.Count, value=1)
                self.outbox.flush(self.repository.payments, order_id, pending)
                return transition.payment
        raise RuntimeError(f"Payment of order {order_id} kept changing; giving up for now")

    def _release(self, order_id: str, holder: str) -> None:
        try:
            self._change(
                order_id, lambda payment: domain.release_lease(payment, holder, utc_now()) if payment else None
            )
        except Exception:
            logger.exception(
                "Could not give up the payment's lease; it expires by itself", extra={"order_id": order_id}
            )
