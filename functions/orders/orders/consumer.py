"""Orders SQS consumer: learns of users, and confirms or rejects orders on inventory's answer.

Every step is idempotent by business key (user id, order status guard), not by message id,
so a redelivered or duplicated message changes nothing the second time.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from orders.dependencies import service
from shop_common.consumer import make_sqs_handler
from shop_common.events import DomainEvent, InventoryRejected, InventoryReserved, UserRegistered
from shop_common.tracing import make_tracer

logger = Logger()
tracer = make_tracer()


@tracer.capture_method
def handle_event(event: DomainEvent) -> None:
    orders = service()
    if isinstance(event, UserRegistered):
        orders.remember_user(event.data.user_id, event.data.email)
    elif isinstance(event, InventoryReserved):
        order = orders.record_reservation(event.data, event.correlation_id)
        logger.info("Reservation recorded", extra={"order_id": order.order_id, "status": order.status.value})
    elif isinstance(event, InventoryRejected):
        order = orders.record_rejection(event.data, event.correlation_id)
        logger.info("Rejection recorded", extra={"order_id": order.order_id, "status": order.status.value})
    else:
        # Only a subscription change could bring other events here; they are not ours to act on.
        logger.warning("Ignoring an event this service does not consume")


handler = tracer.capture_lambda_handler(make_sqs_handler(handle_event, logger))
