"""Orders SQS consumer: learns of users, records inventory's answer, and confirms or rejects
orders on their payment's outcome.

Every step is idempotent by business key (user id, the order's status and payment status,
compare-and-set on its version), not by message id, so a redelivered, duplicated or reordered
message changes nothing the second time.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from orders.dependencies import dependencies, service
from shop_common import snapstart
from shop_common.consumer import make_sqs_handler
from shop_common.events import (
    DomainEvent,
    InventoryRejected,
    InventoryReserved,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    UserRegistered,
)
from shop_common.tracing import make_tracer

logger = Logger()
tracer = make_tracer()


@tracer.capture_method
def handle_event(event: DomainEvent) -> None:
    orders = service()
    if isinstance(event, UserRegistered):
        orders.remember_user(event.data.user_id, event.data.email)
        return
    if isinstance(event, InventoryReserved):
        order = orders.record_reservation(event.data)
    elif isinstance(event, InventoryRejected):
        order = orders.record_rejection(event.data, event.correlation_id)
    elif isinstance(event, PaymentSucceeded):
        order = orders.record_payment(event.data, event.correlation_id)
    elif isinstance(event, PaymentFailed):
        order = orders.record_payment_failure(event.data, event.correlation_id)
    elif isinstance(event, PaymentRefunded):
        order = orders.record_refund(event.data.order_id)
    else:
        # Only a subscription change could bring other events here; they are not ours to act on.
        logger.warning("Ignoring an event this service does not consume")
        return
    logger.info(
        "Order updated",
        extra={"order_id": order.order_id, "status": order.status.value, "payment_status": order.payment_status},
    )


handler = tracer.capture_lambda_handler(make_sqs_handler(handle_event, logger))
snapstart.prepare(dependencies)
