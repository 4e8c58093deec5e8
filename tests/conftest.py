"""Shared fixtures: a real mongod (or $MONGODB_URI), moto for AWS, per-test service runtimes."""

from __future__ import annotations

import importlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

# Set before any handler module is imported (Powertools reads some of these at import).
os.environ.update(
    {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Shop",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
)

import boto3
from moto import mock_aws
from pymongo import MongoClient

from devstack.mongod import MongoServer
from tests.support import ServiceRuntime

SERVICES = ("users", "orders", "inventory", "notifications")
SENDER = "shop@example.com"


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """$MONGODB_URI if set (your own MongoDB or Atlas), else a mongod started for this session."""
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"]
        return
    server = MongoServer(tmp_path_factory.mktemp("mongod"))
    server.start()
    yield server.uri
    server.stop()


@pytest.fixture(scope="session")
def mongo_client(mongo_uri: str) -> Iterator[MongoClient]:
    client: MongoClient = MongoClient(mongo_uri, tz_aware=True)
    yield client
    client.close()


@dataclass
class AwsResources:
    topic_arn: str
    queue_urls: dict[str, str]
    dead_letter_queue_urls: dict[str, str]


QUEUE_SUBSCRIPTIONS = {
    "orders": ["InventoryReserved", "InventoryRejected", "UserRegistered"],
    "inventory": ["OrderPlaced", "OrderCancelled"],
}


@pytest.fixture
def aws() -> Iterator[AwsResources]:
    """moto with the topic and the queues subscribed to it, as template.yaml declares them."""
    with mock_aws():
        sns = boto3.client("sns")
        sqs = boto3.client("sqs")
        topic_arn = sns.create_topic(Name="shop-events")["TopicArn"]
        queue_urls: dict[str, str] = {}
        dead_letter_urls: dict[str, str] = {}
        for service, event_types in QUEUE_SUBSCRIPTIONS.items():
            dlq_url = sqs.create_queue(QueueName=f"{service}-dlq")["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})
            queue_url = sqs.create_queue(
                QueueName=f"{service}-queue", Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": "60"}
            )["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            sns.subscribe(
                TopicArn=topic_arn,
                Protocol="sqs",
                Endpoint=queue_arn,
                Attributes={
                    "RawMessageDelivery": "true",
                    "FilterPolicyScope": "MessageAttributes",
                    "FilterPolicy": json.dumps({"event_type": event_types}),
                },
            )
            queue_urls[service] = queue_url
            dead_letter_urls[service] = dlq_url
        # A tap on the topic with no filter: tests read every published event from it.
        tap_url = sqs.create_queue(QueueName="all-events-tap")["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=tap_arn, Attributes={"RawMessageDelivery": "true"})
        queue_urls["tap"] = tap_url
        # moto cannot invoke Lambda: SNS messages for the notifications function wait in a
        # queue (SNS envelope kept, as Lambda would see it) until a test delivers them.
        sns_url = sqs.create_queue(QueueName="notifications-sns-deliveries")["QueueUrl"]
        sns_arn = sqs.get_queue_attributes(QueueUrl=sns_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        notified = ["UserRegistered", "OrderConfirmed", "OrderRejected", "OrderCancelled"]
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=sns_arn,
            Attributes={"FilterPolicyScope": "MessageAttributes", "FilterPolicy": json.dumps({"event_type": notified})},
        )
        queue_urls["notifications"] = sns_url
        boto3.client("ses").verify_email_identity(EmailAddress=SENDER)
        yield AwsResources(topic_arn=topic_arn, queue_urls=queue_urls, dead_letter_queue_urls=dead_letter_urls)


def _clear_dependency_caches() -> None:
    for service in SERVICES:
        try:
            module = importlib.import_module(f"{service}.dependencies")
        except ModuleNotFoundError:
            continue
        module.dependencies.cache_clear()
        if hasattr(module, "service"):
            module.service.cache_clear()


@pytest.fixture
def runtimes(mongo_uri: str, mongo_client: MongoClient, aws: AwsResources) -> Iterator[dict[str, ServiceRuntime]]:
    """Each service's environment, with a fresh database of its own for this test."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    _clear_dependency_caches()
    yield {
        service: ServiceRuntime(
            {
                "POWERTOOLS_SERVICE_NAME": service,
                "MONGODB_URI": mongo_uri,
                "MONGODB_DATABASE": f"{prefix}_{service}",
                "EVENT_TOPIC_ARN": aws.topic_arn,
                "SENDER_EMAIL": SENDER,
            }
        )
        for service in SERVICES
    }
    _clear_dependency_caches()
    for service in SERVICES:
        mongo_client.drop_database(f"{prefix}_{service}")
