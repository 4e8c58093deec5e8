"""Payments sweep, on a schedule: finishes the provider work payments were left with.

A payment records what it still owes the provider (CHARGING, REFUNDING) before asking; when the
provider is down, or the invocation that held the payment stopped, that work waits on the payment
itself, not on a queue message with a limited number of receives. Every run resumes the unfinished
payments whose lease has ended, oldest first, as long as the provider answers and time is left.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from payments.dependencies import dependencies, service
from shop_common import snapstart
from shop_common.runtime import within_invocation
from shop_common.tracing import make_tracer

logger = Logger()
tracer = make_tracer()
metrics = Metrics()
# Payments looked at per run: far more than a minute's new work, fewer than one run can finish.
SWEEP_BATCH = 100


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@within_invocation  # the provider starts a call only if it can end within the invocation
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = service().resume_unfinished(SWEEP_BATCH)
    metrics.add_metric(name="PaymentsResumed", unit=MetricUnit.Count, value=result.resumed)
    summary = {"resumed": result.resumed, "busy": result.busy, "waiting_on_provider": result.waiting_on_provider}
    if result.waiting_on_provider:
        logger.warning("The payment provider is still unavailable; the next run tries again", extra=summary)
    elif result.resumed or result.busy:
        logger.info("Unfinished payments resumed", extra=summary)
    return summary


snapstart.prepare(dependencies, imports=["payments.provider"])
