"""Notifications: one email per event through SES (moto), idempotent by event_id, retried safely."""

from __future__ import annotations

import contextlib
import copy
import json
import traceback
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from pymongo import MongoClient
from pymongo.errors import AutoReconnect

from notifications import app as notifications_app
from notifications.domain import OrderOwnerUnknown
from notifications.mailer import EmailNotSent
from notifications.repository import ClaimHeld
from shop_common.clock import utc_now
from tests.conftest import SENDER, AwsResources
from tests.support import ServiceRuntime, sample_event, service_logs

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


def cancelled() -> dict[str, Any]:
    return envelope("OrderCancelled", {"order_id": ORDER, "user_id": USER, "items": [{"sku": "A", "quantity": 1}]})


def refunded(amount: int = 5199) -> dict[str, Any]:
    data = {"order_id": ORDER, "refund_id": "re_1", "amount_cents": amount, "currency": "usd"}
    return envelope("PaymentRefunded", data, source="payments")


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
        (confirmed(), "Your order 9b8a7c6d is confirmed", "We charged $51.99 for it."),
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


@pytest.mark.parametrize("order_event", [cancelled, confirmed], ids=["after the cancel", "after the confirmation"])
def test_a_refund_is_emailed_once_to_the_user_of_its_order(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, order_event: Callable[[], dict[str, Any]]
) -> None:
    notifications = runtimes["notifications"]
    notifications.invoke(notifications_app.handler, sns_event(registered("grace@example.com")))
    notifications.invoke(notifications_app.handler, sns_event(order_event()))
    refund = sns_event(refunded())

    notifications.invoke(notifications_app.handler, refund)
    notifications.invoke(notifications_app.handler, copy.deepcopy(refund))  # a duplicate delivery

    [email] = [email for email in sent_emails() if email.subject == "Your order 9b8a7c6d is refunded"]
    assert email.destinations["ToAddresses"] == ["grace@example.com"]
    assert f"We refunded $51.99 for your cancelled order {ORDER}." in email.body
    assert len(sent_emails()) == 3


def test_a_refund_before_any_event_naming_its_user_is_retried_then_sent_once(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    notifications = runtimes["notifications"]
    notifications.invoke(notifications_app.handler, sns_event(registered()))
    early = sns_event(refunded())

    with pytest.raises(OrderOwnerUnknown, match=f"No user known yet for order {ORDER}"):
        notifications.invoke(notifications_app.handler, early)
    assert len(sent_emails()) == 1

    notifications.invoke(notifications_app.handler, sns_event(cancelled()))
    notifications.invoke(notifications_app.handler, early)  # Lambda's asynchronous retry
    notifications.invoke(notifications_app.handler, early)  # and a duplicate delivery
    assert [email.subject for email in sent_emails()] == [
        "Welcome to the shop",
        "Your order 9b8a7c6d is cancelled",
        "Your order 9b8a7c6d is refunded",
    ]


def test_failed_ses_call_is_retried_without_a_second_email(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    notifications = runtimes["notifications"]
    event = sns_event(registered())
    notifications.invoke(notifications_app.handler, sns_event(registered("warm@example.com")))  # warm container
    ses = notifications_app.dependencies().mailer._ses
    throttled = ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "SendEmail")

    with mock.patch.object(ses, "send_email", side_effect=throttled), pytest.raises(EmailNotSent):
        notifications.invoke(notifications_app.handler, event)
    database = mongo_client[notifications.env["MONGODB_DATABASE"]]
    assert database["notifications"].count_documents({"status": "SENT"}) == 1  # only the warm-up

    notifications.invoke(notifications_app.handler, event)  # first retry
    notifications.invoke(notifications_app.handler, event)  # second retry (duplicate)
    assert [email.destinations["ToAddresses"] for email in sent_emails()] == [["warm@example.com"], ["ada@example.com"]]


def test_an_ses_error_naming_the_recipient_is_raised_for_a_retry_and_logged_without_the_address(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    """An error no rule calls final is left to Lambda's retries, then the dead-letter queue."""
    notifications = runtimes["notifications"]
    notifications.invoke(notifications_app.handler, sns_event(registered("warm@example.com")))  # warm container
    ses = notifications_app.dependencies().mailer._ses
    message = "Local address contains control or whitespace: ada@example.com"
    invalid = ClientError({"Error": {"Code": "InvalidParameterValue", "Message": message}}, "SendEmail")

    with (
        service_logs() as logs,
        mock.patch.object(ses, "send_email", side_effect=invalid),
        pytest.raises(EmailNotSent) as raised,
    ):
        notifications.invoke(notifications_app.handler, sns_event(registered()))

    # what Lambda's runtime logs of an error that fails the invocation: its message and its chain
    assert "InvalidParameterValue" in str(raised.value)
    chain = "".join(traceback.format_exception(raised.value))
    assert "ada@example.com" not in chain
    assert [line for line in logs.lines() if "ada@example.com" in line] == []


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


def test_an_invalid_message_is_logged_with_why_under_its_own_correlation_id_and_without_its_content(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    notifications = runtimes["notifications"]
    unnamed = registered("private.person@example.com")
    unnamed["data"] = {**unnamed["data"], "name": "", "user_id": None}
    unparseable = '{"email": "private.person@example.com", "name": "Private Person"'

    with service_logs() as logs:
        notifications.invoke(notifications_app.handler, sns_event(registered()))  # a flow of its own: corr-mail
        for message in ({**unnamed, "correlation_id": "corr-unnamed"}, unparseable):
            with pytest.raises(ValueError) as raised:
                notifications.invoke(notifications_app.handler, sns_event(message))
            assert "private" not in "".join(traceback.format_exception(raised.value)).lower()  # the runtime logs it

    invalid = [record for record in logs.records() if record["message"].startswith("Invalid event message")]
    assert [record.get("correlation_id") for record in invalid] == ["corr-unnamed", None]
    assert [sorted(error["type"] for error in record["errors"]) for record in invalid] == [
        ["string_too_short", "string_type"],
        ["json_invalid"],
    ]
    assert [line for line in logs.lines() if "private" in line.lower()] == []


def test_sample_event_sends_the_confirmation(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> None:
    notifications = runtimes["notifications"]
    notifications.invoke(notifications_app.handler, sns_event(registered()))
    notifications.invoke(notifications_app.handler, sample_event("sns-notifications"))
    assert sent_emails()[-1].subject == "Your order 9b8a7c6d is confirmed"


SES_ENDPOINT = "https://email.eu-west-1.amazonaws.com/"


def emails_to(address: str) -> int:
    return sum(email.destinations["ToAddresses"] == [address] for email in sent_emails())


def notification_status(mongo_client: MongoClient, runtime: ServiceRuntime, event: dict[str, Any]) -> str:
    event_id = json.loads(event["Records"][0]["Sns"]["Message"])["event_id"]
    record = mongo_client[runtime.env["MONGODB_DATABASE"]]["notifications"].find_one({"_id": event_id})
    assert record is not None
    return str(record["status"])


def redeliver(notifications: ServiceRuntime, mongo_client: MongoClient, event: dict[str, Any]) -> None:
    """Everything that may still come for an event: Lambda's two asynchronous retries, then,
    once any claim is long stale, a duplicate delivery or a redrive from the dead-letter queue."""
    for _ in range(2):
        with contextlib.suppress(ClaimHeld):  # an unfinished claim asks Lambda to retry later
            notifications.invoke(notifications_app.handler, event)
    mongo_client[notifications.env["MONGODB_DATABASE"]]["notifications"].update_many(
        {}, {"$set": {"claimed_at": utc_now() - timedelta(hours=1)}}
    )
    notifications.invoke(notifications_app.handler, event)


def warm_container(notifications: ServiceRuntime) -> None:
    """A first email builds the container's dependencies, so a test can patch them."""
    notifications.invoke(notifications_app.handler, sns_event(registered("ada@example.com")))


def test_an_email_sent_but_never_recorded_as_sent_is_not_sent_again(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    notifications = runtimes["notifications"]
    warm_container(notifications)
    event = sns_event(confirmed())
    repository = notifications_app.dependencies().repository

    with mock.patch.object(repository, "mark_sent", side_effect=AutoReconnect("primary stepped down")):
        notifications.invoke(notifications_app.handler, event)  # SES took it: nothing left to retry
    assert emails_to("ada@example.com") == 2

    redeliver(notifications, mongo_client, event)
    assert emails_to("ada@example.com") == 2
    assert notification_status(mongo_client, notifications, event) == "UNKNOWN"


def test_recording_an_email_as_sent_is_retried_within_the_invocation(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    notifications = runtimes["notifications"]
    warm_container(notifications)
    event = sns_event(confirmed())
    repository = notifications_app.dependencies().repository
    mark_sent = repository.mark_sent
    failures = iter([AutoReconnect("blip")])

    def flaky_mark_sent(*args: Any) -> None:
        for failure in failures:
            raise failure
        mark_sent(*args)

    with mock.patch.object(repository, "mark_sent", side_effect=flaky_mark_sent):
        notifications.invoke(notifications_app.handler, event)

    assert notification_status(mongo_client, notifications, event) == "SENT"
    assert emails_to("ada@example.com") == 2


@pytest.mark.parametrize(
    "lost_answer",
    [ReadTimeoutError(endpoint_url=SES_ENDPOINT), ConnectionClosedError(endpoint_url=SES_ENDPOINT)],
    ids=["read timeout", "connection closed"],
)
def test_an_email_whose_ses_answer_was_lost_is_never_sent_again(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, lost_answer: Exception
) -> None:
    notifications = runtimes["notifications"]
    warm_container(notifications)
    event = sns_event(confirmed())
    ses = notifications_app.dependencies().mailer._ses
    send_email = ses.send_email

    def sent_then_lost(**request: Any) -> Any:
        send_email(**request)
        raise lost_answer

    with mock.patch.object(ses, "send_email", side_effect=sent_then_lost):
        notifications.invoke(notifications_app.handler, event)  # recorded for a human, not raised into a resend
    assert emails_to("ada@example.com") == 2
    assert notification_status(mongo_client, notifications, event) == "UNKNOWN"

    redeliver(notifications, mongo_client, event)
    assert emails_to("ada@example.com") == 2


@pytest.mark.parametrize(
    "refusal",
    [
        ClientError({"Error": {"Code": "Throttling", "Message": "Daily message quota exceeded."}}, "SendEmail"),
        EndpointConnectionError(endpoint_url=SES_ENDPOINT),
        ConnectTimeoutError(endpoint_url=SES_ENDPOINT),
    ],
    ids=["daily quota exceeded", "connection refused", "connect timeout"],
)
def test_an_email_ses_definitely_did_not_send_is_sent_by_the_retry_exactly_once(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, refusal: Exception
) -> None:
    notifications = runtimes["notifications"]
    warm_container(notifications)
    event = sns_event(confirmed())
    ses = notifications_app.dependencies().mailer._ses

    with mock.patch.object(ses, "send_email", side_effect=refusal), pytest.raises(EmailNotSent):
        notifications.invoke(notifications_app.handler, event)  # raised: Lambda retries
    assert emails_to("ada@example.com") == 1

    redeliver(notifications, mongo_client, event)
    assert emails_to("ada@example.com") == 2
    assert notification_status(mongo_client, notifications, event) == "SENT"


def test_a_claim_left_by_an_invocation_that_died_mid_send_is_never_taken_over(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    notifications = runtimes["notifications"]
    warm_container(notifications)
    event = sns_event(confirmed())
    ses = notifications_app.dependencies().mailer._ses
    send_email = ses.send_email

    def sent_then_timed_out(**request: Any) -> Any:
        send_email(**request)
        raise SystemExit("Task timed out")  # Lambda stops the invocation: nothing runs after

    with mock.patch.object(ses, "send_email", side_effect=sent_then_timed_out), pytest.raises(SystemExit):
        notifications.invoke(notifications_app.handler, event)
    assert emails_to("ada@example.com") == 2

    redeliver(notifications, mongo_client, event)
    assert emails_to("ada@example.com") == 2
    assert notification_status(mongo_client, notifications, event) == "UNKNOWN"


def emitted_metrics(output: str) -> list[str]:
    """The metric names of the CloudWatch embedded-metric documents Powertools printed."""
    documents = [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"_aws"' in line]
    return [
        metric["Name"]
        for document in documents
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    ]


def notification_record(mongo_client: MongoClient, runtime: ServiceRuntime, event: dict[str, Any]) -> dict[str, Any]:
    event_id = json.loads(event["Records"][0]["Sns"]["Message"])["event_id"]
    record = mongo_client[runtime.env["MONGODB_DATABASE"]]["notifications"].find_one({"_id": event_id})
    assert record is not None
    return dict(record)


def test_a_send_from_an_unverified_sender_is_recorded_as_failed_not_retried_into_the_dead_letter_queue(
    runtimes: dict[str, ServiceRuntime],
    aws: AwsResources,
    mongo_client: MongoClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A fresh account: the sender is not verified, and moto's SES refuses every send from it
    (MessageRejected). A retry would be refused the same way, so none is asked for."""
    notifications = runtimes["notifications"]
    warm_container(notifications)
    boto3.client("ses").delete_identity(Identity=SENDER)
    event = sns_event(confirmed())
    capsys.readouterr()

    with service_logs() as logs:
        notifications.invoke(notifications_app.handler, event)  # returns: Lambda neither retries nor dead-letters

    record = notification_record(mongo_client, notifications, event)
    assert record["status"] == "FAILED"
    assert record["why_failed"].startswith("MessageRejected: Email address not verified")
    assert "@" not in record["why_failed"]
    assert "EmailsRefused" in emitted_metrics(capsys.readouterr().out)
    assert [line for line in logs.lines() if "@" in line] == []

    redeliver(notifications, mongo_client, event)  # a duplicate delivery finds it FAILED: not sent
    assert notification_record(mongo_client, notifications, event)["status"] == "FAILED"
    assert emails_to("ada@example.com") == 1


@pytest.mark.parametrize(
    "code",
    [
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "ConfigurationSetDoesNotExist",
        "ConfigurationSetSendingPausedException",
        "AccountSendingPausedException",
    ],
)
def test_an_ses_refusal_no_retry_can_cure_is_final_and_names_no_address(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, code: str
) -> None:
    notifications = runtimes["notifications"]
    warm_container(notifications)
    ses = notifications_app.dependencies().mailer._ses
    message = f"Email address is not verified. The following identities failed the check: ada@example.com, {SENDER}"
    refused = ClientError({"Error": {"Code": code, "Message": message}}, "SendEmail")
    event = sns_event(confirmed())

    with service_logs() as logs, mock.patch.object(ses, "send_email", side_effect=refused):
        notifications.invoke(notifications_app.handler, event)

    record = notification_record(mongo_client, notifications, event)
    assert record["status"] == "FAILED"
    assert (
        record["why_failed"]
        == f"{code}: {message.replace('ada@example.com', '<recipient>').replace(SENDER, '<sender>')}"
    )
    assert [line for line in logs.lines() if "@" in line] == []


def test_ses_throttling_is_retried_with_a_backoff_within_the_invocation(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    notifications = runtimes["notifications"]
    warm_container(notifications)
    ses = notifications_app.dependencies().mailer._ses
    send_email = ses.send_email
    throttled = ClientError({"Error": {"Code": "Throttling", "Message": "Maximum sending rate exceeded."}}, "SendEmail")
    answers = iter([throttled, throttled])

    def throttled_twice(**request: Any) -> Any:
        for answer in answers:
            raise answer
        return send_email(**request)

    event = sns_event(confirmed())
    with (
        mock.patch.object(ses, "send_email", side_effect=throttled_twice),
        mock.patch("notifications.mailer.time.sleep") as sleep,
    ):
        notifications.invoke(notifications_app.handler, event)

    assert notification_status(mongo_client, notifications, event) == "SENT"
    assert emails_to("ada@example.com") == 2
    first, second = (call.args[0] for call in sleep.call_args_list)
    assert 0 < first <= second  # a backoff: each wait at least as long as the last


def test_ses_throttling_that_outlasts_the_invocation_is_left_to_lambdas_retries(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    notifications = runtimes["notifications"]
    warm_container(notifications)
    ses = notifications_app.dependencies().mailer._ses
    throttled = ClientError({"Error": {"Code": "Throttling", "Message": "Maximum sending rate exceeded."}}, "SendEmail")
    event = sns_event(confirmed())

    with (
        mock.patch.object(ses, "send_email", side_effect=throttled),
        mock.patch("notifications.mailer.time.sleep") as sleep,
        pytest.raises(EmailNotSent, match="Throttling"),
    ):
        notifications.invoke(notifications_app.handler, event)  # raised: Lambda retries later
    assert sleep.call_count >= 1

    redeliver(notifications, mongo_client, event)
    assert notification_status(mongo_client, notifications, event) == "SENT"
    assert emails_to("ada@example.com") == 2
