"""Event delivery as AWS does it: SQS event source mappings, SNS asynchronous invocations
(with retries and a dead-letter queue) and schedules."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from devstack import console
from devstack.queues import LocalQueue
from devstack.runner import FunctionRunner, Invocation
from devstack.template import REGION


def _summary(body: str) -> tuple[str, str, str]:
    """event type, the order or user it is about, correlation id: for the log line."""
    try:
        event = json.loads(body)
        data = event.get("data") or {}
        about = f"order={data['order_id'][:8]}" if "order_id" in data else f"user={str(data.get('user_id', '-'))[:8]}"
        return str(event.get("event_type", "?")), about, str(event.get("correlation_id", "-"))
    except (ValueError, AttributeError, TypeError):
        return "(not an event)", "-", "-"


def _outcome(invocation: Invocation) -> str:
    return "ok" if invocation.ok else f"FAILED ({invocation.error})"


# An SQS event source mapping starts with five pollers per queue (SNS invokes asynchronously
# as many at once as the function's concurrency allows), never more here than the function's
# concurrency, so that a received batch does not wait for a container while its visibility
# timeout runs out.
SQS_POLLERS = 5


class SqsPoller(threading.Thread):
    """One poller of an SQS event source mapping: batches of up to BatchSize; only reported
    failures return to the queue."""

    def __init__(
        self, source: LocalQueue, queue_arn: str, runner: FunctionRunner, batch_size: int, stop: threading.Event
    ):
        super().__init__(name=f"sqs-{runner.spec.name}", daemon=True)
        self.source, self.queue_arn, self.runner = source, queue_arn, runner
        self.batch_size, self.stopping = batch_size, stop

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once()
            except Exception as error:
                console.line("ERROR", f"{self.name}: {error}")
                time.sleep(1)

    def poll_once(self) -> None:
        messages = self.source.receive(self.batch_size, wait_seconds=1)
        for moved in self.source.moved_to_dead_letter_queue():  # by SQS, during that receive
            event_type, about, correlation = _summary(moved["Body"])
            console.line(
                "SQS",
                f"{self.runner.spec.name} {event_type} {about} moved to the dead-letter queue"
                f" {self.source.dead_letter_queue_name} after {moved['ApproximateReceiveCount']} receives"
                f" corr={correlation}",
            )
        if not messages:
            return
        invocation = self.runner.invoke({"Records": [sqs_record(message, self.queue_arn) for message in messages]})
        if invocation.ok:
            failed = {item["itemIdentifier"] for item in (invocation.result or {}).get("batchItemFailures", [])}
        else:
            failed = {message["MessageId"] for message in messages}
        for message in messages:
            event_type, about, correlation = _summary(message["Body"])
            receives = message["Attributes"]["ApproximateReceiveCount"]
            if message["MessageId"] in failed:
                outcome = f"FAILED, returns to the queue (receive {receives})"
            else:
                outcome = "ok"
                self.source.delete(message["ReceiptHandle"])
            console.line(
                "SQS",
                f"{self.runner.served_by(invocation)} {event_type} {about} {outcome}"
                f" {invocation.duration_ms:.0f}ms corr={correlation}",
            )


def sqs_pollers(
    queue: dict[str, str],
    runner: FunctionRunner,
    batch_size: int,
    stop: threading.Event,
    maximum_concurrency: int | None = None,
) -> list[SqsPoller]:
    """The pollers of one event source mapping; ``maximum_concurrency``: its ScalingConfig's."""
    count = min(SQS_POLLERS, runner.concurrency, maximum_concurrency or SQS_POLLERS)
    return [SqsPoller(LocalQueue(queue["url"]), queue["arn"], runner, batch_size, stop) for _ in range(count)]


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """The Lambda SQS event record for one received message, as the event source mapping builds it."""
    attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "dataType": value["DataType"],
            "stringListValues": [],
            "binaryListValues": [],
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


class SnsInvoker(threading.Thread):
    """SNS invokes Lambda asynchronously: on error, retry after a delay, MaximumRetryAttempts
    times, then send the event to the function's dead-letter queue."""

    def __init__(
        self,
        deliveries: LocalQueue,
        runner: FunctionRunner,
        retry_delays: list[int],
        dead_letter: LocalQueue | None,
        stop: threading.Event,
    ):
        super().__init__(name=f"sns-{runner.spec.name}", daemon=True)
        self.deliveries, self.runner, self.stopping = deliveries, runner, stop
        self.retry_delays, self.dead_letter = retry_delays, dead_letter

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once()
            except Exception as error:
                console.line("ERROR", f"{self.name}: {error}")
                time.sleep(1)

    def poll_once(self) -> None:
        for message in self.deliveries.receive(1, wait_seconds=1):
            notification = json.loads(message["Body"])
            event = sns_event(notification)
            attempt = int(message["Attributes"]["ApproximateReceiveCount"])
            invocation = self.runner.invoke(event)
            event_type, about, correlation = _summary(notification.get("Message", ""))
            if invocation.ok:
                outcome = "ok"
                self.deliveries.delete(message["ReceiptHandle"])
            elif attempt <= len(self.retry_delays):
                delay = self.retry_delays[attempt - 1]
                outcome = f"FAILED ({invocation.error}), retry {attempt} in {delay}s"
                self.deliveries.change_visibility(message["ReceiptHandle"], delay)
            else:
                outcome = f"FAILED ({invocation.error}), sent to the dead-letter queue"
                if self.dead_letter is not None:
                    error = {"ErrorMessage": {"DataType": "String", "StringValue": str(invocation.error)[:256]}}
                    self.dead_letter.send(json.dumps(event), error)
                self.deliveries.delete(message["ReceiptHandle"])
            console.line(
                "SNS",
                f"{self.runner.served_by(invocation)} {event_type} {about} {outcome}"
                f" {invocation.duration_ms:.0f}ms corr={correlation}",
            )


def sns_invokers(
    deliveries: dict[str, str],
    runner: FunctionRunner,
    retry_delays: list[int],
    dead_letter_url: str | None,
    stop: threading.Event,
) -> list[SnsInvoker]:
    """As many as the function may run at once."""
    dead_letter = LocalQueue(dead_letter_url) if dead_letter_url else None
    return [
        SnsInvoker(LocalQueue(deliveries["url"]), runner, retry_delays, dead_letter, stop)
        for _ in range(runner.concurrency)
    ]


def sns_event(notification: dict[str, Any]) -> dict[str, Any]:
    """The Lambda SNS event for one SNS notification (as delivered to SQS, not raw)."""
    attributes = {
        name: {"Type": value["Type"], "Value": value["Value"]}
        for name, value in notification.get("MessageAttributes", {}).items()
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{notification['TopicArn']}:{uuid.uuid4()}",
                "Sns": {
                    "Type": notification.get("Type", "Notification"),
                    "MessageId": notification["MessageId"],
                    "TopicArn": notification["TopicArn"],
                    "Subject": notification.get("Subject"),
                    "Message": notification["Message"],
                    "Timestamp": notification["Timestamp"],
                    "SignatureVersion": notification.get("SignatureVersion", "1"),
                    "Signature": notification.get("Signature", "local"),
                    "SigningCertUrl": notification.get("SigningCertURL", "https://local/cert.pem"),
                    "UnsubscribeUrl": notification.get("UnsubscribeURL", "https://local/unsubscribe"),
                    "MessageAttributes": attributes,
                },
            }
        ]
    }


RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def schedule_seconds(expression: str) -> int:
    match = RATE.fullmatch(expression.strip())
    if not match:
        raise ValueError(f"Only rate(...) schedules run locally, not {expression!r}")
    return int(match.group(1)) * SECONDS[match.group(2).rstrip("s")]


class Scheduler(threading.Thread):
    def __init__(self, runner: FunctionRunner, every_seconds: float, stop: threading.Event) -> None:
        super().__init__(name=f"schedule-{runner.spec.name}", daemon=True)
        self.runner, self.every, self.stopping = runner, every_seconds, stop

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": "123456789012",
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": REGION,
                "resources": [f"arn:aws:events:{REGION}:123456789012:rule/{self.runner.spec.name}"],
                "detail": {},
            }
            invocation = self.runner.invoke(event)
            result = invocation.result if invocation.ok else invocation.error
            if not invocation.ok or (isinstance(result, dict) and any(result.values())):
                console.line("SCHED", f"{self.runner.spec.name} {_outcome(invocation)} {result}")
