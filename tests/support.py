"""Helpers for calling handlers in-process the way Lambda would."""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
from aws_lambda_powertools import Metrics
from pymongo import monitoring

from devstack.delivery import sns_event, sqs_record
from devstack.template import FunctionSpec, Template, load_template
from devstack.worker import LocalContext
from shop_common.identity import STAFF_GROUP, Caller

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"

# The callers of the sample events: a customer (every signed-in sample but the PUT) and a staff member,
# each with the email they verified at sign-up.
ADA = Caller(
    user_id="3f2b6c1e-8a4d-4e57-9d0a-1b2c3d4e5f60", email="Ada@Example.com", is_staff=False, email_verified=True
)
GRACE = Caller(
    user_id="9d4c2b1a-6e5f-4a3b-8c7d-0e1f2a3b4c5d", email="grace@example.com", is_staff=True, email_verified=True
)


def customer(name: str = "customer") -> Caller:
    """A new signed-in customer with a verified email, unknown to every service."""
    user_id = str(uuid.uuid4())
    return Caller(user_id=user_id, email=f"{name}-{user_id[:8]}@example.com", is_staff=False, email_verified=True)


def staff_member() -> Caller:
    return replace(customer("staff"), is_staff=True)


def claims_of(caller: Caller) -> dict[str, str]:
    """The claims API Gateway's Cognito authorizer passes on for the caller's ID token: every value
    a string, ``email_verified`` and ``cognito:groups`` included."""
    email_verified = "true" if caller.email_verified else "false"
    claims = {"sub": caller.user_id, "email": caller.email, "email_verified": email_verified, "token_use": "id"}
    if caller.is_staff:
        claims["cognito:groups"] = STAFF_GROUP
    return claims


def sample_event(name: str) -> dict[str, Any]:
    """A fresh copy of ``events/<name>.json`` (the same files `sam local invoke -e` uses)."""
    return copy.deepcopy(json.loads((EVENTS_DIR / f"{name}.json").read_text()))


def api_event(
    name: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    path_params: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    caller: Caller | None = None,
    anonymous: bool = False,
) -> dict[str, Any]:
    """An API Gateway proxy event based on a sample, with the parts a test cares about replaced:
    made by ``caller`` (else the sample's), or by no one (``anonymous``: as if the route had no
    authorizer)."""
    event = sample_event(name)
    if anonymous:
        event["requestContext"].pop("authorizer", None)
    elif caller is not None:
        event["requestContext"]["authorizer"] = {"claims": claims_of(caller)}
    if raw_body is not None:
        event["body"] = raw_body
    elif body is not None:
        event["body"] = json.dumps(body)
    if path_params is not None:
        event["pathParameters"] = path_params
        path = event["resource"]
        for key, value in path_params.items():
            path = path.replace("{" + key + "}", value)
        event["path"] = path
        event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"  # as the client called it
    if query is not None:
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {key: [value] for key, value in query.items()}
    for key, value in (headers or {}).items():
        event["headers"][key] = value
        event["multiValueHeaders"][key] = [value]
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    return event


TEMPLATE = Template(load_template())
FUNCTIONS = TEMPLATE.functions()
DEFAULT_TIMEOUT = float(TEMPLATE.globals["Timeout"])


def FakeLambdaContext() -> LocalContext:  # noqa: N802 (reads like the context class it stands for)
    return LocalContext.fresh("test-function", DEFAULT_TIMEOUT)


def function_of(handler: Callable[[dict[str, Any], Any], Any]) -> FunctionSpec | None:
    """The template's function whose Handler is ``handler`` (its module is imported already, since
    the caller holds the handler); None for a handler the template does not name."""
    for function in FUNCTIONS:
        module, _, attribute = function.handler.rpartition(".")
        if getattr(sys.modules.get(module), attribute, None) is handler:
            return function
    return None


def context_for(handler: Callable[[dict[str, Any], Any], Any]) -> LocalContext:
    """A context for one invocation of ``handler`` with its function's Timeout from the template,
    as Lambda gives it (the payments consumer calls Stripe only with time enough left)."""
    function = function_of(handler)
    if function is None:
        return FakeLambdaContext()
    return LocalContext.fresh(function.name, function.timeout)


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]


def to_response(raw: dict[str, Any]) -> Response:
    headers = {key: values[-1] for key, values in (raw.get("multiValueHeaders") or {}).items()}
    headers.update(raw.get("headers") or {})
    body = json.loads(raw["body"]) if raw.get("body") else None
    return Response(status=raw["statusCode"], body=body, headers=headers)


@contextmanager
def service_dimension(service: str | None) -> Iterator[None]:
    """The ``service`` dimension of the metrics flushed meanwhile. Lambda imports a function's
    modules with its POWERTOOLS_SERVICE_NAME set, and Powertools' Metrics reads it then; in-process,
    every service's modules are imported once, so the dimension is given per invocation instead
    (as a default dimension, which the metrics of every Metrics instance share)."""
    if service is None:
        yield
        return
    with (
        mock.patch.dict(Metrics._default_dimensions, {"service": service}),
        mock.patch.dict(Metrics._dimensions, {"service": service}),
    ):
        yield


def emitted_metrics(stdout: str) -> dict[tuple[str, str], float]:
    """The sums of the metrics Powertools printed to ``stdout`` in CloudWatch's embedded metric
    format, by (service dimension, name), in namespace Shop only."""
    sums: dict[tuple[str, str], float] = {}
    for line in stdout.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            if directive["Namespace"] != "Shop":
                continue
            for metric in directive["Metrics"]:
                values = blob[metric["Name"]]
                total = sum(values) if isinstance(values, list) else values
                key = (blob.get("service", ""), metric["Name"])
                sums[key] = sums.get(key, 0) + total
    return sums


@dataclass
class ServiceRuntime:
    """Invokes one service's handlers with that service's environment, as its Lambda would."""

    env: dict[str, str]

    def invoke(self, handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any]) -> Any:
        with mock.patch.dict(os.environ, self.env), service_dimension(self.env.get("POWERTOOLS_SERVICE_NAME")):
            return handler(event, context_for(handler))

    def http(self, handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any]) -> Response:
        return to_response(self.invoke(handler, event))


def sqs_batch(sample: str, bodies: list[str]) -> dict[str, Any]:
    """An SQS event shaped like ``events/<sample>.json`` whose records carry ``bodies``."""
    template = sample_event(sample)["Records"][0]
    records = []
    for body in bodies:
        record = copy.deepcopy(template)
        record["messageId"] = str(uuid.uuid4())
        record["receiptHandle"] = f"handle-{record['messageId']}"
        record["body"] = body
        try:
            event_type = json.loads(body).get("event_type", "Unknown")
        except (ValueError, AttributeError):
            event_type = "Unknown"
        record["messageAttributes"] = {
            "event_type": {
                "stringValue": str(event_type),
                "dataType": "String",
                "stringListValues": [],
                "binaryListValues": [],
            }
        }
        records.append(record)
    return {"Records": records}


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


class CommandCounter(monitoring.CommandListener):
    """Counts the MongoDB commands sent while recording (pymongo command monitoring)."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self._recording = False

    @contextmanager
    def recording(self) -> Iterator[list[str]]:
        self.commands = []
        self._recording = True
        try:
            yield self.commands
        finally:
            self._recording = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self._recording and event.command_name != "endSessions":
            self.commands.append(f"{event.database_name}.{event.command_name}")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


command_counter = CommandCounter()
# Registered at import, before any client exists, so every client reports to it.
monitoring.register(command_counter)


def deliver(
    queue_url: str, runtime: ServiceRuntime, handler: Callable[[dict[str, Any], Any], Any], deliveries: int = 1
) -> int:
    """Do what the SQS event source mapping does once: receive a batch, invoke, delete the
    records not reported as failed. ``deliveries`` > 1 hands the same batch over that many
    times, as SQS's at-least-once delivery may. Returns how many records were delivered."""
    sqs = boto3.client("sqs")
    received = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    ).get("Messages", [])
    if not received:
        return 0
    queue_arn = f"arn:aws:sqs:eu-west-1:123456789012:{queue_url.rsplit('/', 1)[-1]}"
    event = {"Records": [sqs_record(message, queue_arn) for message in received]}
    failed: set[str] = set()
    for _ in range(deliveries):
        failed |= set(failed_ids(runtime.invoke(handler, copy.deepcopy(event))))
    for message in received:
        if message["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return len(received)


def deliver_all(
    queue_url: str, runtime: ServiceRuntime, handler: Callable[[dict[str, Any], Any], Any], deliveries: int = 1
) -> int:
    total = 0
    while delivered := deliver(queue_url, runtime, handler, deliveries):
        total += delivered
    return total


def received_events(queue_url: str) -> list[dict[str, Any]]:
    """Receive and delete every message now in the queue; returns their bodies."""
    sqs = boto3.client("sqs")
    bodies: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def deliver_sns(
    queue_url: str, runtime: ServiceRuntime, handler: Callable[[dict[str, Any], Any], Any], deliveries: int = 1
) -> int:
    """Invoke an SNS-triggered handler once per waiting notification (``deliveries`` times each:
    SNS, too, may deliver twice), as SNS would; returns the count."""
    delivered = 0
    sqs = boto3.client("sqs")
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            event = sns_event(json.loads(message["Body"]))
            for _ in range(deliveries):
                runtime.invoke(handler, copy.deepcopy(event))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            delivered += 1
    return delivered


def envelope(event_type: str, source: str, data: dict[str, Any], correlation_id: str = "corr-test") -> str:
    """A contract event body, as a producer would publish it."""
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "event_version": 1,
            "occurred_at": "2026-11-23T05:00:00.000Z",
            "correlation_id": correlation_id,
            "source": source,
            "data": data,
        }
    )


class ServiceLogs:
    """The lines the services' Powertools loggers wrote, as they would reach CloudWatch."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


@contextmanager
def service_logs(level: int = logging.DEBUG) -> Iterator[ServiceLogs]:
    """Every line the services' Powertools loggers (and their children) write meanwhile, at
    ``level`` and above: their own handler and formatter, writing to a buffer instead of stdout."""
    captured = ServiceLogs()
    loggers = [item for item in logging.root.manager.loggerDict.values() if isinstance(item, logging.Logger)]
    services = [item for item in loggers if getattr(item, "powertools_handler", None) is not None]
    names = {service.name for service in services}
    levels = {item: item.level for item in loggers if item.name in names or item.name.rpartition(".")[0] in names}
    handlers: list[logging.StreamHandler[Any]] = [service.powertools_handler for service in services]  # type: ignore[attr-defined]
    streams = {handler: handler.stream for handler in handlers}
    for handler in handlers:
        handler.setStream(captured.stream)
    for item in levels:
        item.setLevel(level)
    try:
        yield captured
    finally:
        for item, previous in levels.items():
            item.setLevel(previous)
        for handler, stream in streams.items():
            handler.setStream(stream)
