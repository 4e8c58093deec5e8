"""Dead-letter queues: list what sits in each, and move it back to be processed again.

Works on the local stack (stack.json) and on a deployed stack (--aws: CloudFormation
resources of --stack-name). SQS source queues are redriven with StartMessageMoveTask
where the endpoint supports it (AWS) and with a receive-send-delete loop where it does
not (moto). A Lambda asynchronous dead-letter queue holds invocation events, which no
queue can take back: those are re-invoked asynchronously instead (locally: handed back
to the local SNS delivery of that function).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from devstack.delivery import sns_event
from devstack.provision import aws_client
from devstack.template import Template, load_template


@dataclass(frozen=True)
class DeadLetterQueue:
    name: str  # logical id in template.yaml
    url: str
    arn: str
    source_url: str | None  # the SQS queue whose redrive policy feeds it
    source_arn: str | None
    function: str | None  # the function whose failed async invocations it holds


class Endpoints:
    def __init__(self, stack: dict[str, Any] | None, stack_name: str) -> None:
        template = Template(load_template())
        async_dlq_owner = {
            spec.dead_letter_target["Fn::GetAtt"][0]: spec.name
            for spec in template.functions()
            if spec.dead_letter_target
        }
        if stack is not None:
            endpoint = str(stack["aws_endpoint_url"])
            self.sqs, self.lambda_ = aws_client("sqs", endpoint), None
            queues: dict[str, dict[str, str]] = stack["queues"]
            self.local_deliveries = {function: info["url"] for function, info in stack["sns_deliveries"].items()}
            redrive = {dlq: source for source, dlq in stack["redrive"].items()}
            names = list(stack["dead_letter_queues"])
        else:
            self.sqs, self.lambda_ = boto3.client("sqs"), boto3.client("lambda")
            resources = boto3.client("cloudformation").describe_stack_resources(StackName=stack_name)["StackResources"]
            physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
            queues = {}
            for name, resource_type in ((r["LogicalResourceId"], r["ResourceType"]) for r in resources):
                if resource_type == "AWS::SQS::Queue":
                    url = physical[name]
                    arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                        "QueueArn"
                    ]
                    queues[name] = {"url": url, "arn": arn}
            redrive = {}
            for name, props in template.of_type("AWS::SQS::Queue").items():
                if "RedrivePolicy" in props:
                    redrive[props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]] = name
            names = [name for name in queues if "DeadLetter" in name]
            self.function_names = {name: physical[name] for name in async_dlq_owner.values() if name in physical}
        self.queues = [
            DeadLetterQueue(
                name=name,
                url=queues[name]["url"],
                arn=queues[name]["arn"],
                source_url=queues[redrive[name]]["url"] if name in redrive else None,
                source_arn=queues[redrive[name]]["arn"] if name in redrive else None,
                function=async_dlq_owner.get(name),
            )
            for name in names
            if name in queues
        ]
        self.local = stack is not None

    def count(self, queue: DeadLetterQueue) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def list_queues(endpoints: Endpoints) -> None:
    for queue in endpoints.queues:
        target = queue.source_url or (f"re-invoke {queue.function}" if queue.function else "(nothing to redrive to)")
        print(f"{queue.name}: {endpoints.count(queue)} message(s); redrive -> {target}")
        peek = endpoints.sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=3, VisibilityTimeout=5)
        for message in peek.get("Messages", []):
            print(f"    {message['MessageId']}: {message['Body'][:160]}")
            # a peek, not a take: visible again at once for a redrive or another look
            endpoints.sqs.change_message_visibility(
                QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )


def redrive(endpoints: Endpoints, queue: DeadLetterQueue) -> int:
    if queue.source_arn and queue.source_url:
        try:
            endpoints.sqs.start_message_move_task(SourceArn=queue.arn, DestinationArn=queue.source_arn)
            print(f"{queue.name}: StartMessageMoveTask started towards its source queue")
            return -1
        except (ClientError, BotoCoreError, NotImplementedError) as error:
            print(f"{queue.name}: StartMessageMoveTask unavailable here ({type(error).__name__}); moving one by one")
    moved = 0
    while messages := endpoints.sqs.receive_message(
        QueueUrl=queue.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=1
    ).get("Messages", []):
        for message in messages:
            _send_back(endpoints, queue, message)
            endpoints.sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    print(f"{queue.name}: moved {moved} message(s) back")
    return moved


def _send_back(endpoints: Endpoints, queue: DeadLetterQueue, message: dict[str, Any]) -> None:
    if queue.source_url:
        attributes = {
            name: {key: value for key, value in attribute.items() if key in ("DataType", "StringValue", "BinaryValue")}
            for name, attribute in message.get("MessageAttributes", {}).items()
        }
        endpoints.sqs.send_message(QueueUrl=queue.source_url, MessageBody=message["Body"], MessageAttributes=attributes)
        return
    if queue.function is None:
        raise SystemExit(f"{queue.name} has no source queue and no function to re-invoke")
    event = json.loads(message["Body"])
    if queue.name.endswith("SubscriptionDeadLetterQueue"):  # SNS notifications SNS could not deliver
        event = sns_event(event)
    if endpoints.local:
        delivery = endpoints.local_deliveries[queue.function]
        notification = event["Records"][0]["Sns"]
        notification["MessageAttributes"] = {
            name: {"Type": value["Type"], "Value": value["Value"]}
            for name, value in notification["MessageAttributes"].items()
        }
        endpoints.sqs.send_message(QueueUrl=delivery, MessageBody=json.dumps(notification))
    else:
        assert endpoints.lambda_ is not None
        endpoints.lambda_.invoke(
            FunctionName=endpoints.function_names[queue.function], InvocationType="Event", Payload=json.dumps(event)
        )


def run_dlq(args: argparse.Namespace, stack: dict[str, Any] | None) -> int:
    endpoints = Endpoints(stack, args.stack_name)
    chosen = [queue for queue in endpoints.queues if args.queue in (None, queue.name, queue.url)]
    if not chosen:
        raise SystemExit(f"No dead-letter queue {args.queue!r}; known: {[q.name for q in endpoints.queues]}")
    if args.action == "list":
        endpoints.queues = chosen
        list_queues(endpoints)
    else:
        for queue in chosen:
            redrive(endpoints, queue)
    return 0
