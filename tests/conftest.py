"""Shared fixtures: a real mongod (or $MONGODB_URI), moto for AWS, per-test service runtimes."""

from __future__ import annotations

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
from aws_lambda_powertools import Metrics
from moto import mock_aws
from pymongo import MongoClient

from devstack.mongod import MongoServer, free_port
from devstack.provision import provision
from devstack.stripe_server import API_KEY as STRIPE_API_KEY
from devstack.stripe_server import StripeServer
from devstack.template import Template, load_template
from shop_common.container import release_all
from tests.support import ServiceRuntime

SERVICES = ("users", "orders", "inventory", "notifications", "payments")
SENDER = "shop@example.com"


@pytest.fixture(autouse=True)
def environment_as_it_was() -> Iterator[None]:
    """Each test leaves os.environ as it found it. Threads that each patch it (mock.patch.dict,
    as ServiceRuntime.invoke does) restore one another's values, and would leak a function's
    settings (STRIPE_API_KEY, say) into later tests."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def no_metrics_counted_before() -> None:
    """Each test starts with no metric left unflushed by another (a shared judgement counts an
    outage wherever it is called; Powertools keeps metrics per process until a handler flushes them)."""
    Metrics().clear_metrics()


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


@pytest.fixture
def aws(mongo_uri: str) -> Iterator[AwsResources]:
    """moto with every queue, subscription, secret and the topic of template.yaml, created by
    the local stack's own provisioning, so tests run against the template's filter policies."""
    with mock_aws():
        provisioned = provision(Template(load_template()), None, mongo_uri, prefix="shop-test", fast=False)
        sqs, sns = boto3.client("sqs"), boto3.client("sns")
        topic_arn = provisioned.topic_arns["ShopEventsTopic"]
        # A tap on the topic with no filter: tests read every published event from it.
        tap_url = sqs.create_queue(QueueName="all-events-tap")["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=tap_arn, Attributes={"RawMessageDelivery": "true"})
        boto3.client("ses").verify_email_identity(EmailAddress=SENDER)
        queues = provisioned.queues
        yield AwsResources(
            topic_arn=topic_arn,
            queue_urls={
                "orders": queues["OrdersQueue"]["url"],
                "inventory": queues["InventoryQueue"]["url"],
                "payments": queues["PaymentsQueue"]["url"],
                # moto cannot invoke Lambda: the notifications function's SNS messages wait here,
                # filtered by its subscription, until a test delivers them.
                "notifications": provisioned.sns_delivery_queues["NotificationsFunction"]["url"],
                "tap": tap_url,
            },
            dead_letter_queue_urls={
                "orders": queues["OrdersDeadLetterQueue"]["url"],
                "inventory": queues["InventoryDeadLetterQueue"]["url"],
                "payments": queues["PaymentsDeadLetterQueue"]["url"],
            },
        )


def _clear_dependency_caches() -> None:
    """Every test starts as a new container: nothing a service built (clients, secrets read, the
    payment provider) carries over from another test."""
    release_all()


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


@dataclass(frozen=True)
class LocalStripe:
    url: str
    api_key: str = STRIPE_API_KEY


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    """localstripe as the local stack runs it, for this session (its state shared by every test:
    tests tell their payments apart by order id)."""
    server = StripeServer(free_port())
    url = server.start(tmp_path_factory.mktemp("localstripe") / "localstripe.log")
    yield LocalStripe(url)
    server.stop()
