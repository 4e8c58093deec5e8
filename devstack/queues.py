"""The local AWS's SQS queues as the stack's event delivery reads them: in-process, from the
moto backend that serves the local endpoint in this same process, not over HTTP.

Functions still reach SQS and SNS over HTTP, as in AWS. Only the stack's own pollers take
this shortcut: a receive and a delete cost about 1 ms of CPU here against about 10 ms
through botocore, HTTP and moto's server, and those pollers were most of the stack's CPU.
The semantics are moto's own receive (visibility timeout, receive count, redrive to the
dead-letter queue); received messages have boto3's shape.

moto moves a message to its queue's dead-letter queue inside a receive (the first after its
maxReceiveCount-th), and says nothing of it: the pollers find what it moved by looking in the
dead-letter queue after each receive, so that the stack logs each move as it happened.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.core.utils import unix_time
from moto.sqs.models import Message, SQSBackend, sqs_backends

from devstack.template import ACCOUNT_ID, REGION


def _within_retention_period(backend: SQSBackend, queue_name: str, message: Message) -> bool:
    """moto 5.2's own check builds every attribute of the queue, message counts included, for
    each message it hands out: O(queue length) per message, which made a backlog of a few
    hundred messages in one queue slow down every queue of the stack. The same check, reading
    the one attribute it needs."""
    retention_seconds = int(backend.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
    return bool(retention_seconds + message.sent_timestamp / 1000 > unix_time())  # type: ignore[operator]


SQSBackend.is_message_valid_based_on_retention_period = _within_retention_period  # type: ignore[method-assign, assignment]


# The messages each dead-letter queue held when a poller last looked (every poller of a queue
# shares its dead-letter queue), so that each move is reported once.
_dead_letters_seen: dict[str, set[str]] = {}
_dead_letters_lock = threading.Lock()


class LocalQueue:
    def __init__(self, url: str) -> None:
        self.url = url
        self.name = url.rsplit("/", 1)[-1]
        self._backend: SQSBackend = sqs_backends[ACCOUNT_ID][REGION]
        attributes = self._backend.get_queue_attributes(self.name, ["VisibilityTimeout"])
        self.visibility_timeout = int(attributes["VisibilityTimeout"])  # as provisioned
        dead_letter_queue = self._backend.get_queue(self.name).dead_letter_queue
        self.dead_letter_queue_name: str | None = dead_letter_queue.name if dead_letter_queue else None
        if dead_letter_queue is not None:
            with _dead_letters_lock:  # what is there already was not moved by this stack's receives
                _dead_letters_seen.setdefault(dead_letter_queue.name, {m.id for m in dead_letter_queue._messages})

    def moved_to_dead_letter_queue(self) -> list[dict[str, str]]:
        """The messages moved to this queue's dead-letter queue since a poller of it last asked,
        as {"MessageId", "Body", "ApproximateReceiveCount"}."""
        dead_letter_queue = self._backend.get_queue(self.name).dead_letter_queue
        if dead_letter_queue is None:
            return []
        with _dead_letters_lock:
            present = list(dead_letter_queue._messages)
            seen = _dead_letters_seen.get(dead_letter_queue.name, set())
            _dead_letters_seen[dead_letter_queue.name] = {message.id for message in present}
        return [
            {
                "MessageId": message.id,
                "Body": message.body,
                "ApproximateReceiveCount": str(message.approximate_receive_count),
            }
            for message in present
            if message.id not in seen
        ]

    def receive(self, max_messages: int, wait_seconds: int) -> list[dict[str, Any]]:
        """Up to ``max_messages``, waiting at most ``wait_seconds`` for the first (a long poll)."""
        messages = self._backend.receive_message(
            self.name, max_messages, wait_seconds, self.visibility_timeout, ["All"]
        )
        return [
            {
                "MessageId": message.id,
                "ReceiptHandle": message.receipt_handle,
                "MD5OfBody": message.body_md5,
                "Body": message.body,
                "MessageAttributes": message.message_attributes,
                "Attributes": {
                    "ApproximateReceiveCount": str(message.approximate_receive_count),
                    "SentTimestamp": str(message.sent_timestamp),
                    "SenderId": message.sender_id,
                    "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
                },
            }
            for message in messages
        ]

    def delete(self, receipt_handle: str) -> None:
        self._backend.delete_message(self.name, receipt_handle)

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        self._backend.change_message_visibility(self.name, receipt_handle, seconds)

    def send(self, body: str, attributes: dict[str, Any]) -> None:
        """``attributes`` as boto3 takes them: {name: {"DataType", "StringValue"}}."""
        self._backend.send_message(self.name, body, message_attributes=attributes)
