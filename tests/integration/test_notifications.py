"""Notifications: one email per event through SES (moto), idempotent by event_id, retried safely."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from pymongo import MongoClient

from notifications import app as notifications_app
from tests.conftest import SENDER, AwsResources
from tests.support import ServiceRuntime, sample_event

USER = "3f2b6c1e-8a4d-4e57-9d0a-1b2c3d4e5f60"
ORDER = "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


def sent_emails() -> list[Any]:
    return list(ses_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"].sent_messages)


def envelope(event_type: str, data: dict[str, Any], source: str = "orders") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "event_version": 1,
        "occurred_at": "2026-11-23T05:00:00.000Z",
        "correlation_id": "corr-mail",
        "source": source,
        "data": data,
    }


def sns_event(message: dict[str, Any] | str) -> dict[str, Any]:
    event = sample_event("sns-notifications")
    record = event["Records"][0]["Sns"]
    record["Message"] = message if isinstance(message, str) else json.dumps(message)
    record["MessageId"] = str(uuid.uuid4())
    event_type = message.get("event_type", "?") if isinstance(message, dict) else "?"
    record["MessageAttributes"] = {"event_type": {"Type": "String", "Value": event_type}}
    return event


def registered(email: str = "ada@example.com") -> dict[str, Any]:
    return envelope("UserRegistered", {"user_id": USER, "email": email, "name": "Ada"}, source="users")


def confirmed(total: int = 5199) -> dict[str, Any]:
    return envelope("OrderConfirmed", {"order_id": ORDER, "user_id": USER, "total_cents": total})


def test_user_registered_stores_the_contact_and_sends_a_welcome(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    notifications = runtimes["notifications"]
    notifications.invoke(notifications_app.handler, sns_event(registered()))

    [email] = sent_emails()
    assert (email.source, email.destinations["ToAddresses"]) == (SENDER, ["ada@example.com"])
    assert email.subject == "Welcome to the shop"
    database = mongo_client[notifications.env["MONGODB_DATABASE"]]
    contact = database["contacts"].find_one({"_id": USER})
    assert contact is not None
    assert contact["email"] == "ada@example.com"
    [record] = database["notifications"].find()
    assert (record["status"], record["to"], record["event_type"]) == ("SENT", "ada@example.com", "UserRegistered")
    assert record["message_id"]


@pytest.mark.parametrize(
    ("message", "subject", "in_body"),
    [
        (confirmed(), "Your order 9b8a7c6d is confirmed", "Total: $51.99."),
        (
            envelope("OrderRejected", {"order_id": ORDER, "user_id": USER, "reason": "Not enough stock for PEN-7."}),
            "We could not accept your order 9b8a7c6d",
            "Not enough stock for PEN-7.",
        ),
        (
            envelope("OrderCancelled", {"order_id": ORDER, "user_id": USER, "items": [{"sku": "A", "quantity": 1}]}),
            "Your order 9b8a7c6d is cancelled",
            "is cancelled",
        ),
    ],
)
def test_each_order_event_sends_one_email_to_its_user(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, message: dict[str, Any], subject: str, in_body: str
) -> None:
    notifications = runtimes["notifications"]
    notifications.invoke(notifications_app.handler, sns_event(registered("grace@example.com")))

    notifications.invoke(notifications_app.handler, sns_event(message))

    email = sent_emails()[-1]
    assert len(sent_emails()) == 2
    assert email.destinations["ToAddresses"] == ["grace@example.com"]
    assert email.subject == subject
    assert in_body in email.body


def test_the_same_event_delivered_twice_sends_one_email(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> None:
    notifications = runtimes["notifications"]
    event = sns_event(registered())
    notifications.invoke(notifications_app.handler, event)
    notifications.invoke(notifications_app.handler, copy.deepcopy(event))
    assert len(sent_emails()) == 1


def test_order_event_before_the_user_is_known_is_retried_then_sent_once(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    notifications = runtimes["notifications"]
    early = sns_event(confirmed())

    with pytest.raises(Exception, match="No contact yet"):
        notifications.invoke(notifications_app.handler, early)
    assert sent_emails() == []

    notifications.invoke(notifications_app.handler, sns_event(registered()))
    notifications.invoke(notifications_app.handler, early)  # Lambda's asynchronous retry
    notifications.invoke(notifications_app.handler, early)  # and a duplicate delivery
    assert [email.subject for email in sent_emails()] == ["Welcome to the shop", "Your order 9b8a7c6d is confirmed"]


def test_failed_ses_call_is_retried_without_a_second_email(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    notifications = runtimes["notifications"]
    event = sns_event(registered())
    notifications.invoke(notifications_app.handler, sns_event(registered("warm@example.com")))  # warm container
    ses = notifications_app.dependencies().mailer._ses
    throttled = ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "SendEmail")

    with mock.patch.object(ses, "send_email", side_effect=throttled), pytest.raises(ClientError):
        notifications.invoke(notifications_app.handler, event)
    database = mongo_client[notifications.env["MONGODB_DATABASE"]]
    assert database["notifications"].count_documents({"status": "SENT"}) == 1  # only the warm-up

    notifications.invoke(notifications_app.handler, event)  # first retry
    notifications.invoke(notifications_app.handler, event)  # second retry (duplicate)
    assert [email.destinations["ToAddresses"] for email in sent_emails()] == [["warm@example.com"], ["ada@example.com"]]


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        {**confirmed(), "event_type": "OrderShipped"},
        {**confirmed(), "event_version": 2},
        {**confirmed(), "data": {"order_id": ORDER}},
    ],
)
def test_invalid_messages_fail_and_send_nothing(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, message: dict[str, Any] | str
) -> None:
    notifications = runtimes["notifications"]
    notifications.invoke(notifications_app.handler, sns_event(registered()))
    with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
        notifications.invoke(notifications_app.handler, sns_event(message))
    assert len(sent_emails()) == 1


def test_sample_event_sends_the_confirmation(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> None:
    notifications = runtimes["notifications"]
    notifications.invoke(notifications_app.handler, sns_event(registered()))
    notifications.invoke(notifications_app.handler, sample_event("sns-notifications"))
    assert sent_emails()[-1].subject == "Your order 9b8a7c6d is confirmed"
