"""What an SQS consumer (shop_common/consumer.py) logs for a failed record: its reason (the
handler's exception, or why the body is not an event) under the record's own correlation id, never
the previous record's; and never the record's content (a customer's email, say)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from typing import Any
from unittest import mock

from aws_lambda_powertools import Logger

from shop_common.consumer import make_sqs_handler
from shop_common.events import DomainEvent
from tests.support import FakeLambdaContext, envelope, failed_ids, sqs_batch

LOCKED = "the sku is locked: BOOK-1"


def paid(correlation_id: str) -> str:
    data = {"order_id": str(uuid.uuid4()), "payment_id": "pi_1", "amount_cents": 5199, "currency": "usd"}
    return envelope("PaymentSucceeded", "payments", data, correlation_id)


def handle(event: DomainEvent) -> None:
    if event.correlation_id == "flow-locked":
        raise RuntimeError(LOCKED)


class Consumer:
    """A consumer whose log lines (Powertools' JSON, as CloudWatch gets them) the test reads."""

    def __init__(self, handle_event: Callable[[Any], None] = handle) -> None:
        self.stream = io.StringIO()
        logger = Logger(service=f"consumer-{uuid.uuid4().hex[:8]}", level="DEBUG", stream=self.stream)
        self.handler: Callable[[dict[str, Any], Any], Any] = make_sqs_handler(handle_event, logger)

    def consume(self, *bodies: str) -> tuple[list[str], list[str]]:
        """The batch's message ids, and those reported failed."""
        event = sqs_batch("sqs-orders-batch", list(bodies))
        failed = failed_ids(self.handler(event, FakeLambdaContext()))
        return [record["messageId"] for record in event["Records"]], failed

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def about(self, message_id: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("message_id") == message_id]


def test_each_failure_is_logged_with_its_reason_under_its_own_records_correlation_id() -> None:
    consumer = Consumer()
    missing_amount = json.loads(paid("flow-invalid"))
    del missing_amount["data"]["amount_cents"]
    bodies = [paid("flow-1"), "{not json", paid("flow-locked"), json.dumps(missing_amount), paid("flow-2")]

    ids, failed = consumer.consume(*bodies)

    assert failed == [ids[1], ids[2], ids[3]]
    [handled_first] = consumer.about(ids[0])
    assert (handled_first["message"], handled_first["correlation_id"]) == ("Event handled", "flow-1")

    [not_json] = consumer.about(ids[1])  # not parseable: no correlation id, not the previous record's
    assert not_json["level"] == "ERROR"
    assert "correlation_id" not in not_json
    assert [error["type"] for error in not_json["errors"]] == ["json_invalid"]

    [locked] = consumer.about(ids[2])
    assert (locked["level"], locked["correlation_id"], locked["event_type"]) == (
        "ERROR",
        "flow-locked",
        "PaymentSucceeded",
    )
    assert LOCKED in locked["exception"]

    [invalid] = consumer.about(ids[3])  # an event in every way but one: its own correlation id
    assert (invalid["level"], invalid["correlation_id"]) == ("ERROR", "flow-invalid")
    assert [(error["type"], error["loc"][-1]) for error in invalid["errors"]] == [("missing", "amount_cents")]

    [handled_last] = consumer.about(ids[4])
    assert (handled_last["message"], handled_last["correlation_id"]) == ("Event handled", "flow-2")
    [summary] = [line for line in consumer.lines() if line["message"] == "Records failed"]
    assert "correlation_id" not in summary  # about the batch, not the last record's flow


def test_a_record_of_the_next_batch_does_not_inherit_the_previous_flows_correlation_id() -> None:
    consumer = Consumer()
    consumer.consume(paid("flow-previous"))

    ids, failed = consumer.consume(json.dumps({"event_type": "PaymentSucceeded"}))

    assert failed == ids
    [line] = consumer.about(ids[0])
    assert "correlation_id" not in line
    assert {error["loc"][-1] for error in line["errors"]} >= {"event_id", "correlation_id", "data"}


def test_a_failed_record_is_logged_without_its_content_even_when_events_are_logged() -> None:
    data = {"email": "private.person@example.com", "name": "Private Person"}  # the user_id is missing
    registered = envelope("UserRegistered", "users", data, "flow-register")

    with mock.patch.dict("os.environ", {"POWERTOOLS_LOGGER_LOG_EVENT": "true"}):  # an operator's debugging switch
        consumer = Consumer()
    ids, failed = consumer.consume(registered)

    assert failed == ids
    [line] = consumer.about(ids[0])
    assert [(error["type"], error["loc"][-1]) for error in line["errors"]] == [("missing", "user_id")]
    log = consumer.stream.getvalue()
    assert "private.person" not in log
    assert "Private Person" not in log
