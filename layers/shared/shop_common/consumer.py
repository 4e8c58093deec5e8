"""SQS consumers of domain events: partial batch responses with Powertools batch processing.

Each record's body (SNS raw message delivery) is validated against the event models, so a
record that is not JSON, has an unknown type or version, or does not match its schema fails
alone; only failed records are reported back to SQS, retried after the visibility timeout and
moved to the dead-letter queue after ``maxReceiveCount``; a record that waits on a dependency
comes back later and later instead (shop_common.redelivery).

Each record is logged under its own correlation id (none if it carries none), never the
previous record's; a failure with its reason: the handler's exception, or the validation
errors without the input they were about (a record may carry a customer's email).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json, ValidationError

from shop_common.events import DomainEvent, claimed_correlation_id, why_invalid
from shop_common.redelivery import back_off, waits_on_dependency
from shop_common.runtime import within_invocation


class EventRecord(SqsRecordModel):
    body: Json[DomainEvent]


EventHandler = Callable[[Any], None]
SqsHandler = Callable[[dict[str, Any], LambdaContext], PartialItemFailureResponse]
RECORD_KEYS = ["message_id", "event_type", "event_id"]
# Whatever a record's handling counts (a change of state, an outage) is flushed once per batch.
metrics = Metrics()


def make_sqs_handler(handle_event: EventHandler, logger: Logger) -> SqsHandler:
    """A Lambda handler that feeds each valid event of an SQS batch to ``handle_event``."""
    # Validated in record_handler rather than with the processor's model=, which fails an invalid
    # record before any code of ours sees it, so it could not be logged.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def record_handler(record: SQSRecord) -> None:
        logger.append_keys(message_id=record.message_id)
        try:
            event = _event_of(record, logger)
            logger.set_correlation_id(event.correlation_id)
            logger.append_keys(event_type=event.event_type, event_id=str(event.event_id))
            try:
                handle_event(event)
            except Exception as error:
                if not waits_on_dependency(error):
                    logger.exception("Event failed; it will be retried, then dead-lettered")
                    raise
                logger.warning("Event waits on a dependency", extra={"reason": str(error)})
                receives = int(record.attributes.approximate_receive_count)
                if not back_off(record.event_source_arn, record.receipt_handle, receives, error):
                    raise
            logger.info("Event handled")
        finally:
            logger.remove_keys(RECORD_KEYS)
            logger.set_correlation_id(None)

    @logger.inject_lambda_context(log_event=False)  # a record's body may carry a customer's email
    @metrics.log_metrics
    @within_invocation  # the outbox's immediate publish only starts if it can finish in time
    def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        failures = response.get("batchItemFailures", [])
        if failures:
            logger.warning(
                "Records failed",
                extra={"failed": len(failures), "total": len(event.get("Records", [])), "ids": failures},
            )
        return response

    return handler


def _event_of(record: SQSRecord, logger: Logger) -> DomainEvent:
    """The record's event; an invalid one is logged with why, under the correlation id it claims."""
    try:
        return EventRecord.model_validate(record.raw_event).body
    except ValidationError as invalid:
        logger.set_correlation_id(claimed_correlation_id(record.body))
        logger.error("Event invalid; it will be retried, then dead-lettered", extra={"errors": why_invalid(invalid)})
        raise
