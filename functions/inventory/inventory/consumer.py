"""Inventory SQS consumer: reserves stock for placed orders, returns it for cancelled ones, for
those whose payment failed and for rejected ones (their deadline passed).

Idempotent by order id (the reservation record), not by message id: a redelivered or
duplicated message finds the order already decided and changes nothing.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from inventory import domain
from inventory.dependencies import dependencies
from shop_common import snapstart
from shop_common.clock import utc_now
from shop_common.consumer import make_sqs_handler
from shop_common.events import DomainEvent, OrderCancelled, OrderPlaced, OrderRejected, PaymentFailed
from shop_common.tracing import make_tracer

logger = Logger()
tracer = make_tracer()
# Why an order's stock returns, by the event that says so.
RELEASED_AS = {
    OrderCancelled: domain.ReservationStatus.CANCELLED,
    PaymentFailed: domain.ReservationStatus.PAYMENT_FAILED,
    OrderRejected: domain.ReservationStatus.ORDER_REJECTED,
}


@tracer.capture_method
def handle_event(event: DomainEvent) -> None:
    deps = dependencies()
    if isinstance(event, OrderPlaced):
        order, now = event.data, utc_now()
        pending = deps.repository.reserve(
            order.order_id,
            order.items,
            lambda products: domain.decide(order.order_id, order.items, products, event.correlation_id, now),
            now,
        )
        if pending is None:
            logger.info("Order already decided; nothing to do", extra={"order_id": order.order_id})
            return
        deps.outbox.flush(deps.repository.reservations, order.order_id, [pending])
        logger.info("Order decided", extra={"order_id": order.order_id, "outcome": pending.event_type})
    elif isinstance(event, OrderCancelled | PaymentFailed | OrderRejected):
        released_as = RELEASED_AS[type(event)]
        previous = deps.repository.release(event.data.order_id, released_as, utc_now())
        # previous RESERVED: its stock returned now; released already, or none: nothing to return.
        logger.info("Release handled", extra={"order_id": event.data.order_id, "as": released_as, "previous": previous})
    else:
        # Only a subscription change could bring other events here; they are not ours to act on.
        logger.warning("Ignoring an event this service does not consume")


handler = tracer.capture_lambda_handler(make_sqs_handler(handle_event, logger))
snapstart.prepare(dependencies)
