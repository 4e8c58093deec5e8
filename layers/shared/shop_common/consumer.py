"""SQS consumers of domain events: partial batch responses with Powertools batch processing.

Each record's body (SNS raw message delivery) is validated against the event models
(``model=``), so a record that is not JSON, has an unknown type or version, or does not
match its schema fails alone; only failed records are reported back to SQS, retried after
the visibility timeout and moved to the dead-letter queue after ``maxReceiveCount``; a record
that waits on a dependency comes back later and later instead (shop_common.redelivery).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from shop_common.events import DomainEvent
from shop_common.redelivery import back_off, waits_on_dependency
from shop_common.runtime import within_invocation


class EventRecord(SqsRecordModel):
    body: Json[DomainEvent]


EventHandler = Callable[[Any], None]
SqsHandler = Callable[[dict[str, Any], LambdaContext], PartialItemFailureResponse]


def make_sqs_handler(handle_event: EventHandler, logger: Logger) -> SqsHandler:
    """A Lambda handler that feeds each valid event of an SQS batch to ``handle_event``."""
    processor = BatchProcessor(event_type=EventType.SQS, model=EventRecord, raise_on_entire_batch_failure=False)

    def record_handler(record: EventRecord) -> None:
        event = record.body
        logger.set_correlation_id(event.correlation_id)
        logger.append_keys(event_type=event.event_type, event_id=str(event.event_id), message_id=record.messageId)
        try:
            handle_event(event)
        except Exception as error:
            if not waits_on_dependency(error):
                logger.exception("Event failed; it will be retried, then dead-lettered")
                raise
            logger.warning("Event waits on a dependency", extra={"reason": str(error)})
            if not back_off(record, error):
                raise
        finally:
            logger.remove_keys(["event_type", "event_id", "message_id"])
        logger.info("Event handled", extra={"event_type": event.event_type})

    @logger.inject_lambda_context
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
