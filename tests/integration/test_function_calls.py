"""Every AWS call each function makes when it runs is granted by its role, and was found by the
static analysis that tests/unit/test_function_grants.py compares the roles with.

The whole shop runs in process on moto, the real mongod and localstripe, each function as the
template configures it: its environment resolved (its connection string read from its own
secret, the Stripe key from the payments secret), a container of its own per invocation. A
botocore hook on the functions' one botocore session (shop_common.aws) records each operation
with the resource it names. The scenario: a customer registers, staff stock the products, the
customer orders (reserved, charged, confirmed, emailed) and cancels (refunded), and then every
scheduled function runs while old events wait in every outbox. Every function of the template
must have run.

This is the static analysis' check against reality: a call made through a path it cannot see (a
library, a client built some other way) is reported here, not silently left ungranted.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import boto3
import pytest
from moto import mock_aws
from pymongo import MongoClient

from devstack.delivery import sns_event, sqs_record
from devstack.provision import Provisioned, provision
from devstack.template import ACCOUNT_ID, REGION, Template, load_template
from devstack.worker import LocalContext, load_handler
from shop_common.aws import botocore_session
from shop_common.clock import utc_now
from shop_common.container import release_all
from tests.code_reach import AwsCall
from tests.conftest import LocalStripe
from tests.least_privilege import Access, LambdaFunction, code_reach, granted, iam_action, lambda_functions
from tests.sam_translation import translated_template
from tests.support import GRACE, api_event, sample_event

ORDER_SKUS = ("BOOK-1", "PEN-7")  # those of the sample order (events/api-orders-create.json)


class CallRecorder:
    """Records, per function, each AWS operation called on the session and the resource it names."""

    def __init__(self, queue_arns: dict[str, str]) -> None:
        self.function: str | None = None
        self.calls: dict[str, set[tuple[AwsCall, str]]] = {}
        self._queue_arns = queue_arns  # by URL
        self._lock = threading.Lock()  # the relays publish from several threads

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        call = AwsCall(model.service_model.service_name, model.name)
        with self._lock:
            assert self.function is not None, f"{call} outside any function"
            self.calls.setdefault(self.function, set()).add((call, self._resource(call, params)))

    def _resource(self, call: AwsCall, params: dict[str, Any]) -> str:
        if call.service == "sns":
            return str(params["TopicArn"])
        if call.service == "secretsmanager":
            return str(params["SecretId"])
        if call.service == "ses":
            return f"arn:aws:ses:{REGION}:{ACCOUNT_ID}:identity/{params['Source']}"
        if call.service == "sqs":
            return self._queue_arns[params["QueueUrl"]]
        raise AssertionError(f"{call}: say here which parameter names its resource")


class Shop:
    """The template's functions, invoked as API Gateway, the event source mappings, SNS and the
    schedules would invoke them."""

    def __init__(self, provisioned: Provisioned, localstripe: LocalStripe, database_prefix: str) -> None:
        self.template = translated_template()
        self.functions = lambda_functions(self.template["Resources"])
        self.resolver = provisioned.resolver
        self.provisioned = provisioned
        self.invoked: set[str] = set()
        self.database_prefix = database_prefix
        self.stripe_api_base = localstripe.url
        self.queue_urls = {queue["arn"]: queue["url"] for queue in provisioned.queues.values()}
        self.recorder = CallRecorder({url: arn for arn, url in self.queue_urls.items()})

    def environment(self, function: LambdaFunction) -> dict[str, str]:
        resolved = {name: value for name, value in self.resolver.resolve(function.environment).items() if value}
        resolved["MONGODB_DATABASE"] = f"{self.database_prefix}_{resolved['MONGODB_DATABASE']}"
        resolved["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        if "STRIPE_SECRET_ID" in resolved:
            resolved["STRIPE_API_BASE"] = self.stripe_api_base
        # Unset as in AWS: the connection string and the Stripe key come from the secrets.
        return {**resolved, "MONGODB_URI": "", "STRIPE_API_KEY": "", "AWS_ENDPOINT_URL": ""}

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        function = self.functions[name]
        release_all()  # a container of its own: clients built, and secrets read, afresh
        botocore_session().register("before-parameter-build", self.recorder)  # the container's session
        self.invoked.add(name)
        self.recorder.function = name
        try:
            with mock.patch.dict(os.environ, self.environment(function)):
                timeout = float(function.properties.get("Timeout", 10))
                return load_handler(function.handler)(event, LocalContext.fresh(name, timeout))
        finally:
            self.recorder.function = None
            release_all()

    def http(self, name: str, event: dict[str, Any], status: int) -> Any:
        response = self.invoke(name, event)
        assert response["statusCode"] == status, response
        return json.loads(response["body"])

    def function_serving(self, sample: str) -> str:
        """The function whose Api event serves the route of ``events/<sample>.json``."""
        event = sample_event(sample)
        raw = load_template()["Resources"]
        for name in self.functions:
            for trigger in raw[name]["Properties"].get("Events", {}).values():
                route = trigger.get("Properties", {})
                if trigger["Type"] == "Api" and (route["Path"], route["Method"].upper()) == (
                    event["resource"],
                    event["httpMethod"],
                ):
                    return name
        raise AssertionError(f"no function serves {sample}")

    def settle(self) -> None:
        """Deliver what the queues and the topic hold until the saga comes to rest."""
        while self._deliver_to_queue_consumers() + self._deliver_to_topic_subscribers():
            pass

    def _deliver_to_queue_consumers(self) -> int:
        sqs, delivered = boto3.client("sqs"), 0
        for name, function in self.functions.items():
            for source in function.sqs_sources:
                queue_arn = self.resolver.resolve(source)
                url = self.queue_urls[queue_arn]
                messages = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
                ).get("Messages", [])
                if not messages:
                    continue
                response = self.invoke(name, {"Records": [sqs_record(message, queue_arn) for message in messages]})
                assert response == {"batchItemFailures": []}, (name, response)
                for message in messages:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                delivered += len(messages)
        return delivered

    def _deliver_to_topic_subscribers(self) -> int:
        sqs, delivered = boto3.client("sqs"), 0
        for name, deliveries in self.provisioned.sns_delivery_queues.items():
            for message in sqs.receive_message(QueueUrl=deliveries["url"], MaxNumberOfMessages=10).get("Messages", []):
                self.invoke(name, sns_event(json.loads(message["Body"])))
                sqs.delete_message(QueueUrl=deliveries["url"], ReceiptHandle=message["ReceiptHandle"])
                delivered += 1
        return delivered

    def scheduled_functions(self) -> list[str]:
        targets = [
            target["Arn"]["Ref"]
            for resource in self.template["Resources"].values()
            if resource["Type"] == "AWS::Events::Rule"
            for target in resource["Properties"]["Targets"]
        ]
        aliases = self.template["Resources"]
        return sorted({aliases[target]["Properties"]["FunctionName"]["Ref"] for target in targets})


@pytest.fixture
def shop(mongo_uri: str, mongo_client: MongoClient, localstripe: LocalStripe) -> Iterator[Shop]:
    prefix = f"g{uuid.uuid4().hex[:12]}"
    with mock_aws():
        provisioned = provision(Template(load_template()), None, mongo_uri, prefix="shop-grants", fast=False)
        shop = Shop(provisioned, localstripe, prefix)
        secrets = boto3.client("secretsmanager")
        for function in shop.functions.values():
            if "STRIPE_SECRET_ID" in function.environment:
                stripe_secret = shop.resolver.resolve(function.environment["STRIPE_SECRET_ID"])
                secrets.put_secret_value(SecretId=stripe_secret, SecretString=localstripe.api_key)
        try:
            yield shop
        finally:
            for name in mongo_client.list_database_names():
                if name.startswith(prefix):
                    mongo_client.drop_database(name)


def age_every_outbox(mongo_client: MongoClient, prefix: str) -> None:
    """An old event waiting in every outbox (in every document that has one), for the relays."""
    old = {
        "event_id": str(uuid.uuid4()),
        "event_type": "Probe",  # no subscription takes it
        "body": "{}",
        "recorded_at": utc_now() - timedelta(hours=1),
    }
    for database in (name for name in mongo_client.list_database_names() if name.startswith(prefix)):
        for collection in mongo_client[database].list_collection_names():
            mongo_client[database][collection].update_many(
                {"pending_events": {"$exists": True}}, {"$push": {"pending_events": old}}
            )


def test_every_call_a_function_makes_is_granted_and_was_found_statically(shop: Shop, mongo_client: MongoClient) -> None:
    shop.http(shop.function_serving("api-users-create"), api_event("api-users-create"), 201)
    shop.http(shop.function_serving("api-users-get"), api_event("api-users-get"), 200)
    shop.settle()
    for sku in ORDER_SKUS:
        product = {"name": f"Product {sku}", "unit_price_cents": 1000, "available": 10}
        put = api_event("api-inventory-put", path_params={"sku": sku}, body=product, caller=GRACE)
        shop.http(shop.function_serving("api-inventory-put"), put, 200)
    shop.http(shop.function_serving("api-inventory-get"), api_event("api-inventory-get"), 200)
    placed = shop.http(
        shop.function_serving("api-orders-create"),
        api_event("api-orders-create", headers={"Idempotency-Key": str(uuid.uuid4())}),
        201,
    )
    order = {"order_id": placed["order_id"]}
    shop.settle()
    assert (
        shop.http(shop.function_serving("api-orders-get"), api_event("api-orders-get", path_params=order), 200)[
            "status"
        ]
        == "CONFIRMED"
    )
    shop.http(shop.function_serving("api-orders-list"), api_event("api-orders-list"), 200)
    shop.http(shop.function_serving("api-orders-cancel"), api_event("api-orders-cancel", path_params=order), 200)
    shop.settle()
    age_every_outbox(mongo_client, shop.database_prefix)
    for name in shop.scheduled_functions():
        shop.invoke(name, sample_event("schedule-every-minute"))

    assert shop.invoked == set(shop.functions), "a function the scenario does not run is not checked: run it"
    problems = []
    for name, calls in sorted(shop.recorder.calls.items()):
        function = shop.functions[name]
        grants = granted(function, shop.template["Resources"], shop.resolver)
        found = code_reach(function).calls
        for call, resource in sorted(calls):
            access = Access(iam_action(call), resource)
            if not any(grant.covers(access) for grant in grants):
                problems.append(f"{name}: {call.operation} on {resource} is not granted")
            if call not in found:
                problems.append(f"{name}: {call.operation} was not found by tests.code_reach")

    assert problems == []

    # The recorder saw what the scenario did: every function read its connection string from its
    # own secret, the payments consumer its Stripe key; events were published, emails sent.
    for name, function in shop.functions.items():
        secret = shop.resolver.resolve(function.environment["MONGODB_SECRET_ID"])
        assert (AwsCall("secretsmanager", "GetSecretValue"), secret) in shop.recorder.calls[name], name
    operations = {call.operation for calls in shop.recorder.calls.values() for call, _ in calls}
    assert {"GetSecretValue", "PublishBatch", "SendEmail"} <= operations
    assert not [
        call for call, _ in shop.recorder.calls[shop.function_serving("api-inventory-put")] if call.service == "sns"
    ]
