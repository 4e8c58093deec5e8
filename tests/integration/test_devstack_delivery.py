"""The local stack's SQS event source mapping (devstack/delivery.py) on moto's in-process SQS: a
message that keeps failing is moved to the dead-letter queue by SQS itself (moto, at the receive
after maxReceiveCount), and the stack's console says so, once, with the message's flow."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, cast

import boto3
import pytest

from devstack.delivery import SqsPoller
from devstack.queues import LocalQueue
from devstack.runner import FunctionRunner, Invocation
from tests.conftest import AwsResources
from tests.support import envelope

MAX_RECEIVES = 2


@dataclass
class Spec:
    name: str


class FailingFunction:
    """Stands for a FunctionRunner whose function reports every record of every batch failed."""

    spec = Spec("OrdersEventsFunction")

    def invoke(self, event: dict[str, Any]) -> Invocation:
        failures = [{"itemIdentifier": record["messageId"]} for record in event["Records"]]
        return Invocation(ok=True, result={"batchItemFailures": failures}, error=None, duration_ms=1.0)

    def served_by(self, invocation: Invocation) -> str:
        return f"{self.spec.name}[1]"


def test_the_stack_logs_the_move_of_a_message_to_the_dead_letter_queue_once(
    aws: AwsResources, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs")
    dead_letter_url = sqs.create_queue(QueueName="failing-dead-letters")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = f'{{"deadLetterTargetArn": "{dead_letter_arn}", "maxReceiveCount": "{MAX_RECEIVES}"}}'
    url = sqs.create_queue(QueueName="failing", Attributes={"VisibilityTimeout": "0", "RedrivePolicy": redrive})[
        "QueueUrl"
    ]
    data = {"order_id": "0b5e4c1a-2f3d-4e6a-8b7c-9d0e1f2a3b4c", "user_id": "u1", "items": [{"sku": "A", "quantity": 1}]}
    sqs.send_message(QueueUrl=url, MessageBody=envelope("OrderCancelled", "orders", data, "flow-dead"))
    poller = SqsPoller(
        LocalQueue(url), "arn:failing", cast(FunctionRunner, FailingFunction()), batch_size=10, stop=threading.Event()
    )

    for _ in range(MAX_RECEIVES + 2):  # failed at each receive; moved at the next; then nothing
        poller.poll_once()

    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if "FAILED" in line]) == MAX_RECEIVES
    [moved] = [line for line in lines if "dead-letter queue" in line]
    assert "OrderCancelled order=0b5e4c1a" in moved
    assert f"moved to the dead-letter queue failing-dead-letters after {MAX_RECEIVES} receives" in moved
    assert moved.endswith("corr=flow-dead")
    assert (
        sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
        == "1"
    )
