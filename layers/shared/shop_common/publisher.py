"""Publishes events to the one SNS topic, with ``event_type`` as a message attribute."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools import Logger

from shop_common.aws import REPEATABLE, create_client
from shop_common.settings import ServiceSettings

logger = Logger(child=True)

SNS_BATCH_LIMIT = 10
# SNS caps the messages and attributes of one PublishBatch request at 256 KiB in total.
SNS_BATCH_BYTES = 256 * 1024
EVENT_TYPE_ATTRIBUTE = "event_type"
# Publishing an event twice is harmless (every consumer is idempotent): retrying is safe.
PUBLISH_BUDGET = REPEATABLE


class OutgoingEvent(Protocol):
    @property
    def event_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def body(self) -> str: ...


EventT = TypeVar("EventT", bound=OutgoingEvent)


def entry_bytes(event: OutgoingEvent) -> int:
    """What an event counts towards the PublishBatch size limit: its message and attribute."""
    return len(event.body.encode()) + len(EVENT_TYPE_ATTRIBUTE) + len("String") + len(event.event_type.encode())


def batches(events: Iterable[EventT]) -> Iterator[list[EventT]]:
    """``events`` grouped as PublishBatch requests allow: 10 entries and 256 KiB at most."""
    batch: list[EventT] = []
    size = 0
    for event in events:
        event_size = entry_bytes(event)
        if batch and (len(batch) == SNS_BATCH_LIMIT or size + event_size > SNS_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += event_size
    if batch:
        yield batch


class SnsPublisher:
    def __init__(self, settings: ServiceSettings) -> None:
        if not settings.event_topic_arn:
            raise RuntimeError("EVENT_TOPIC_ARN is not set")
        self.topic_arn = settings.event_topic_arn
        self._endpoint_url = settings.aws_endpoint_url

    @property
    def _sns(self) -> Any:
        # Created on first publish, once per container: read-only paths never import botocore.
        # Thread-safe: the relay publishes from several threads through this one client.
        return create_client("sns", self._endpoint_url, PUBLISH_BUDGET)

    def warm_up(self) -> None:
        """Build the SNS client now: botocore imported, its model loaded (~150 ms) before a snapshot."""
        self._sns  # noqa: B018 (built on first access)

    def publish(self, events: Sequence[OutgoingEvent]) -> set[str]:
        """Publish ``events``; returns the ids SNS accepted. Those it refused are logged and
        stay pending; a call that fails (timeout, throttling beyond the budget) raises."""
        accepted: set[str] = set()
        for batch in batches(events):
            response = self._sns.publish_batch(
                TopicArn=self.topic_arn,
                PublishBatchRequestEntries=[
                    {
                        "Id": event.event_id,
                        "Message": event.body,
                        "MessageAttributes": {
                            EVENT_TYPE_ATTRIBUTE: {"DataType": "String", "StringValue": event.event_type}
                        },
                    }
                    for event in batch
                ],
            )
            accepted.update(entry["Id"] for entry in response.get("Successful", []))
            if response.get("Failed"):
                logger.warning("SNS refused events; they stay in the outbox", extra={"failed": response["Failed"]})
        return accepted
