"""Publishes events to the one SNS topic, with ``event_type`` as a message attribute."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, Protocol

from shop_common.settings import ServiceSettings

SNS_BATCH_LIMIT = 10


class OutgoingEvent(Protocol):
    @property
    def event_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def body(self) -> str: ...


class PublishError(Exception):
    """SNS refused some events; they stay in the outbox for the relay."""


class SnsPublisher:
    def __init__(self, settings: ServiceSettings) -> None:
        if not settings.event_topic_arn:
            raise RuntimeError("EVENT_TOPIC_ARN is not set")
        self.topic_arn = settings.event_topic_arn
        self._endpoint_url = settings.aws_endpoint_url

    @cached_property
    def _sns(self) -> Any:
        # Created on first publish, once per container: read-only paths never import it.
        # botocore directly: boto3's session layer adds ~30 ms and nothing used here.
        import botocore.session

        return botocore.session.get_session().create_client("sns", endpoint_url=self._endpoint_url)

    def publish(self, events: Sequence[OutgoingEvent]) -> None:
        for start in range(0, len(events), SNS_BATCH_LIMIT):
            chunk = events[start : start + SNS_BATCH_LIMIT]
            response = self._sns.publish_batch(
                TopicArn=self.topic_arn,
                PublishBatchRequestEntries=[
                    {
                        "Id": event.event_id,
                        "Message": event.body,
                        "MessageAttributes": {"event_type": {"DataType": "String", "StringValue": event.event_type}},
                    }
                    for event in chunk
                ],
            )
            if response.get("Failed"):
                raise PublishError(f"SNS rejected {len(response['Failed'])} event(s): {response['Failed']}")
