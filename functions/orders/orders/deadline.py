"""The order deadline, on a schedule: rejects the orders still PENDING past it.

An order waits on inventory and payments; when something stays broken or down for too long, the
customer gets an answer instead of waiting for ever, and OrderRejected has inventory and payments
give back whatever they hold for the order. Every expiry is counted (OrdersExpired, with an alarm:
it means something is broken).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from orders.dependencies import dependencies, service
from shop_common import snapstart
from shop_common.runtime import within_invocation
from shop_common.tracing import make_tracer

logger = Logger()
tracer = make_tracer()
metrics = Metrics()
# Orders rejected per run at most: a run takes milliseconds each; the next run takes the rest.
DEADLINE_BATCH = 500


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@within_invocation  # the outbox's immediate publish only starts if it can finish in time
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rejected = service().reject_overdue(DEADLINE_BATCH)
    metrics.add_metric(name="OrdersExpired", unit=MetricUnit.Count, value=len(rejected))
    if rejected:
        logger.warning("Orders rejected at their deadline", extra={"order_ids": rejected})
    return {"rejected": rejected}


snapstart.prepare(dependencies)
