"""Payments SQS consumer: charges an order once its stock is reserved, refunds it (or stops its
charge) if it is cancelled or rejected.

Idempotent by order id (the payment record and its state), not by message id: a redelivered,
duplicated or reordered message finds the payment where the first one left it.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from payments.dependencies import dependencies, service
from shop_common import snapstart
from shop_common.consumer import make_sqs_handler
from shop_common.events import DomainEvent, InventoryReserved, OrderCancelled, OrderPlaced, OrderRejected
from shop_common.runtime import within_invocation
from shop_common.tracing import make_tracer

logger = Logger()
tracer = make_tracer()


@tracer.capture_method
def handle_event(event: DomainEvent) -> None:
    if not isinstance(event, OrderPlaced | InventoryReserved | OrderCancelled | OrderRejected):
        # Only a subscription change could bring other events here; they are not ours to act on.
        logger.warning("Ignoring an event this service does not consume")
        return
    payment = service().handle(event)
    logger.info("Payment handled", extra={"order_id": payment.order_id, "status": payment.status.value})


# within_invocation: the provider starts a call only if it can end within the invocation.
handler = tracer.capture_lambda_handler(within_invocation(make_sqs_handler(handle_event, logger)))
snapstart.prepare(dependencies, imports=["payments.provider"])  # stripe, imported at the first charge
