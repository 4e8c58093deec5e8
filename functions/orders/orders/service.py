"""Orders use cases: domain decisions, stored with their events, then published.

Decided with the caller: an order is placed for the caller; an order, and a user's list, is
seen (and cancelled) by its owner or staff, and anyone else is told it does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from orders import domain
from orders.domain import (
    IdempotencyKey,
    NewOrder,
    Order,
    OrderNotFound,
    PagePosition,
    Transition,
    UnknownUser,
    UserOrdersNotFound,
)
from orders.repository import OrdersRepository
from shop_common.clock import new_id, utc_now
from shop_common.events import (
    InventoryRejectedData,
    InventoryReservedData,
    PaymentFailedData,
    PaymentSucceededData,
)
from shop_common.identity import Caller
from shop_common.outbox import Outbox
from shop_common.runtime import attempts_in_time

# A transition loses its compare-and-set only if the order changed in between; re-deciding
# on the fresh order settles it. An order changes at most four times (its total; confirmed,
# rejected or, once cancelled, its payment recorded; cancelled; refunded), so a decision loses
# at most three times.
MAX_TRANSITION_ATTEMPTS = 4
# What an order's stored change counts toward, by the event announcing it: counted where the change
# is stored, so a request or a message that finds it made already (and changes nothing) counts nothing.
# A rejection at the deadline counts as OrdersRejected too, and as OrdersExpired (orders.deadline).
METRIC_OF_EVENT = {
    "OrderPlaced": "OrdersPlaced",
    "OrderConfirmed": "OrdersConfirmed",
    "OrderRejected": "OrdersRejected",
    "OrderCancelled": "OrdersCancelled",
}

metrics = Metrics()  # flushed by the handler's log_metrics


class OrdersService:
    def __init__(self, repository: OrdersRepository, outbox: Outbox, deadline: timedelta) -> None:
        self.repository = repository
        self.outbox = outbox
        self.deadline = deadline  # how long an order may stay PENDING

    def place(
        self, caller: Caller, request: NewOrder, correlation_id: str, idempotency_key: IdempotencyKey | None = None
    ) -> Order:
        """Place the caller's order. Under an Idempotency-Key its id derives from the key: if an
        earlier attempt with the key stored the order, however that attempt ended, the insert
        finds it and this returns it rather than placing another. An OrderPlaced that attempt
        did not publish is still in the order's outbox, where the relay finds it."""
        user_id = domain.placer_of(caller, request)
        if not self.repository.is_known_user(user_id):
            raise UnknownUser(user_id)
        order_id = idempotency_key.order_id() if idempotency_key else new_id()
        order, event = domain.place_order(user_id, request, order_id, correlation_id, utc_now())
        pending = self.repository.insert(order, event)
        if pending is None:
            return domain.replay(self._stored(order_id), user_id, request)
        metrics.add_metric(name=METRIC_OF_EVENT[event.event_type], unit=MetricUnit.Count, value=1)
        self.outbox.flush(self.repository.orders, order.order_id, [pending])
        return order

    def get(self, caller: Caller, order_id: str) -> Order:
        order = self._stored(order_id)
        if not caller.may_see(order.user_id):
            raise OrderNotFound(order_id)
        return order

    def page(self, caller: Caller, user_id: str, limit: int, cursor: str | None) -> tuple[list[Order], str | None]:
        if not caller.may_see(user_id):
            raise UserOrdersNotFound(user_id)
        after = None
        if cursor:
            claimed = domain.decode_cursor(cursor)
            after = domain.check_cursor(claimed, self.repository.position_of(user_id, claimed.order_id))
        # One more than asked tells whether another page exists, in the same query.
        orders = self.repository.page_for_user(user_id, limit + 1, after)
        if len(orders) <= limit:
            return orders, None
        last = orders[limit - 1]
        return orders[:limit], domain.encode_cursor(PagePosition(last.created_at, last.order_id))

    def cancel(self, caller: Caller, order_id: str, correlation_id: str) -> Order:
        def decide(order: Order) -> Transition | None:
            if not caller.may_see(order.user_id):
                raise OrderNotFound(order_id)
            return domain.cancel(order, correlation_id, utc_now())

        return self._transition(order_id, decide)

    def record_reservation(self, reservation: InventoryReservedData) -> Order:
        return self._transition(reservation.order_id, lambda order: domain.record_total(order, reservation, utc_now()))

    def record_rejection(self, rejection: InventoryRejectedData, correlation_id: str) -> Order:
        return self._transition(
            rejection.order_id, lambda order: domain.reject_for_stock(order, rejection, correlation_id, utc_now())
        )

    def record_payment(self, payment: PaymentSucceededData, correlation_id: str) -> Order:
        return self._transition(
            payment.order_id, lambda order: domain.confirm(order, payment, correlation_id, utc_now())
        )

    def record_payment_failure(self, failure: PaymentFailedData, correlation_id: str) -> Order:
        return self._transition(
            failure.order_id, lambda order: domain.reject_for_payment(order, failure, correlation_id, utc_now())
        )

    def record_refund(self, order_id: str) -> Order:
        return self._transition(order_id, lambda order: domain.record_refund(order, utc_now()))

    def reject_overdue(self, batch: int) -> list[str]:
        """Reject up to ``batch`` orders still PENDING past the deadline, oldest first; their ids."""
        now = utc_now()
        overdue = self.repository.pending_placed_before(now - self.deadline, batch)
        return [order_id for order_id in overdue if self._reject_if_overdue(order_id, now)]

    def _reject_if_overdue(self, order_id: str, now: datetime) -> bool:
        """Whether this call rejected the order (it may have moved on since it was listed)."""
        decisions: list[Transition | None] = []

        def decide(order: Order) -> Transition | None:
            decisions.append(domain.reject_overdue(order, self.deadline, now))
            return decisions[-1]

        self._transition(order_id, decide)
        return decisions[-1] is not None  # the last decision is the one stored

    def remember_user(self, user_id: str, email: str) -> None:
        self.repository.remember_user(user_id, email)

    def _stored(self, order_id: str) -> Order:
        order = self.repository.get(order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    def _transition(self, order_id: str, decide: Callable[[Order], Transition | None]) -> Order:
        for _ in attempts_in_time(MAX_TRANSITION_ATTEMPTS):
            order = self._stored(order_id)
            transition = decide(order)
            if transition is None:
                return order
            pending = self.repository.apply(transition)
            if pending is not None:
                if transition.event is not None:
                    metrics.add_metric(
                        name=METRIC_OF_EVENT[transition.event.event_type], unit=MetricUnit.Count, value=1
                    )
                self.outbox.flush(self.repository.orders, order_id, pending)
                return transition.order
        raise RuntimeError(f"Order {order_id} kept changing; giving up for now")
