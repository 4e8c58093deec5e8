"""A payment provider that is down longer than a message's receives last: the payments service
owns its unfinished work. A record waiting on the provider backs off instead of spending its
receives, lets go at its last receive rather than reaching the dead-letter queue, and the sweep
finishes the payment once the provider is back; OrderRejected stops or refunds a charge; a refund is
the order's own; a refusal of the payment itself is a decline, not a retry.

Through the real payments queue of the template (moto: visibility timeout 360 s, maxReceiveCount
5); the time a record is held back passes at once (the test makes it visible again)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from payments import consumer, sweep
from payments.domain import PaymentStatus
from shop_common.clock import utc_now
from shop_common.redelivery import QueueSettings, RetryLater, plan
from tests.conftest import AwsResources, LocalStripe
from tests.integration.test_payments import (
    TOTAL,
    PaymentsRuntime,
    Stripe,
    cancelled,
    consume,
    new_order,
    placed,
    published,
    reserved,
    status_of,
    types_of,
)
from tests.stripe_proxy import StripeProxy
from tests.support import ServiceRuntime, envelope, failed_ids, sqs_record

PAYMENTS_QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:{name}"


@pytest.fixture
def payments(runtimes: dict[str, ServiceRuntime], localstripe: LocalStripe, proxy: StripeProxy) -> PaymentsRuntime:
    return PaymentsRuntime(
        runtimes["payments"].env | {"STRIPE_API_KEY": localstripe.api_key, "STRIPE_API_BASE": proxy.url}
    )


@pytest.fixture
def stored(payments: PaymentsRuntime, mongo_client: MongoClient) -> Collection:
    return mongo_client[payments.env["MONGODB_DATABASE"]]["payments"]


@pytest.fixture
def provider(localstripe: LocalStripe) -> Stripe:
    return Stripe(localstripe)  # asked directly, not through the proxy


@pytest.fixture
def provider_down(proxy: StripeProxy) -> Iterator[StripeProxy]:
    """The provider refuses every request until the test calls ``come_back()``."""
    proxy.go_down()
    yield proxy


def rejected(order_id: str, reason: str = "The order could not be completed in time.") -> str:
    data = {"order_id": order_id, "user_id": "user-1", "reason": reason}
    return envelope("OrderRejected", "orders", data, "corr-deadline")


def send(aws: AwsResources, *bodies: str) -> None:
    sqs = boto3.client("sqs")
    for body in bodies:
        event_type = json.loads(body)["event_type"]
        sqs.send_message(
            QueueUrl=aws.queue_urls["payments"],
            MessageBody=body,
            MessageAttributes={"event_type": {"DataType": "String", "StringValue": event_type}},
        )


def receive_and_consume(payments: PaymentsRuntime, aws: AwsResources) -> list[dict[str, Any]]:
    """What the event source mapping does once, then lets the time the failed records were held
    back for pass (they become visible again at once). Returns the messages received."""
    sqs, url = boto3.client("sqs"), aws.queue_urls["payments"]
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    ).get("Messages", [])
    if not messages:
        return []
    arn = PAYMENTS_QUEUE_ARN.format(name=url.rsplit("/", 1)[-1])
    failed = set(failed_ids(payments.invoke(consumer.handler, {"Records": [sqs_record(m, arn) for m in messages]})))
    # Held back: not received again before the backoff passes.
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []) == []
    for message in messages:
        if message["MessageId"] in failed:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
        else:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return messages


def queue_depth(url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def run_sweep(payments: PaymentsRuntime) -> dict[str, Any]:
    result: dict[str, Any] = payments.invoke(sweep.handler, {})
    return result


# ---------- the backoff itself (pure) ----------


def test_a_record_waiting_on_a_dependency_comes_back_later_and_later() -> None:
    queue = QueueSettings(visibility_timeout=360, max_receive_count=5)
    waiting = RetryLater("provider down")
    assert [plan(receives, queue, waiting).delay_seconds for receives in (1, 2, 3, 4)] == [720, 1440, 2880, 5760]
    assert plan(30, queue, waiting).delay_seconds == 4 * 3600  # capped: SQS takes at most 12 hours


def test_work_its_owner_resumes_is_let_go_at_the_last_receive_and_other_work_is_not() -> None:
    queue = QueueSettings(visibility_timeout=60, max_receive_count=5)
    owned = RetryLater("provider down", resumed_by_owner=True)
    assert [plan(receives, queue, owned).let_go for receives in (1, 4, 5)] == [False, False, True]
    assert not plan(5, queue, RetryLater("provider down")).let_go


def test_a_busy_payment_comes_back_no_sooner_than_its_lease_ends() -> None:
    queue = QueueSettings(visibility_timeout=2, max_receive_count=5)
    busy = RetryLater("leased", resumed_by_owner=True, not_before_seconds=90)
    assert plan(1, queue, busy).delay_seconds == 90


# ---------- an outage longer than the receives ----------


def test_an_outage_longer_than_every_receive_strands_no_charge(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider_down: StripeProxy, provider: Stripe
) -> None:
    """Given the provider refusing every request, When the charge's messages are received more
    times than the queue's maxReceiveCount, Then nothing reaches the dead-letter queue, and once the
    provider is back the sweep charges the order once."""
    order_id = new_order()
    send(aws, placed(order_id), reserved(order_id))

    receives = [len(receive_and_consume(payments, aws)) for _ in range(7)]

    assert receives[:5] == [2, 1, 1, 1, 1]  # OrderPlaced succeeds at once; InventoryReserved waits
    assert receives[5:] == [0, 0]  # let go at its 5th receive: its payment owns the work
    assert queue_depth(aws.dead_letter_queue_urls["payments"]) == 0
    assert status_of(stored, order_id) is PaymentStatus.CHARGING
    assert run_sweep(payments)["waiting_on_provider"]  # still down: the sweep stops, the payment waits

    provider_down.come_back()
    assert run_sweep(payments) == {"resumed": 1, "busy": 0, "waiting_on_provider": None}

    assert status_of(stored, order_id) is PaymentStatus.SUCCEEDED
    assert len(provider.charges(order_id)) == 1
    [event] = published(aws, order_id)
    assert (event["event_type"], event["correlation_id"]) == ("PaymentSucceeded", "corr-place")
    assert run_sweep(payments)["resumed"] == 0  # nothing left


def test_a_cancel_during_an_outage_is_refunded_when_the_provider_is_back(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, proxy: StripeProxy, provider: Stripe
) -> None:
    """Given a charged order, When it is cancelled while the provider is down for longer than the
    cancel's receives, Then the sweep refunds it once the provider is back, under the cancel's flow."""
    order_id = new_order()
    assert consume(payments, placed(order_id), reserved(order_id)) == []
    proxy.go_down()
    send(aws, cancelled(order_id))

    for _ in range(6):
        receive_and_consume(payments, aws)

    assert queue_depth(aws.queue_urls["payments"]) == queue_depth(aws.dead_letter_queue_urls["payments"]) == 0
    assert status_of(stored, order_id) is PaymentStatus.REFUNDING
    proxy.come_back()
    assert run_sweep(payments)["resumed"] == 1
    assert status_of(stored, order_id) is PaymentStatus.REFUNDED
    assert len(provider.refunds(order_id)) == 1
    events = published(aws, order_id)
    assert [(e["event_type"], e["correlation_id"]) for e in events] == [
        ("PaymentSucceeded", "corr-place"),
        ("PaymentRefunded", "corr-cancel"),
    ]


def test_the_sweep_resumes_a_payment_whose_holder_stopped_once_its_lease_has_ended(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    """An invocation that stopped mid-charge (a crash, a timeout) leaves its lease behind: the
    sweep leaves the payment alone while the lease lasts and finishes it after."""
    order_id = new_order()
    assert consume(payments, placed(order_id)) == []
    stored.update_one(
        {"_id": order_id},
        {
            "$set": {
                "status": "CHARGING",
                "amount_cents": TOTAL,
                "currency": "usd",
                "lease": {"holder": "a-stopped-invocation", "until": utc_now() + timedelta(seconds=60)},
            }
        },
    )
    assert run_sweep(payments)["resumed"] == 0

    stored.update_one({"_id": order_id}, {"$set": {"lease.until": utc_now() - timedelta(seconds=1)}})
    assert run_sweep(payments)["resumed"] == 1
    assert status_of(stored, order_id) is PaymentStatus.SUCCEEDED
    assert len(provider.charges(order_id)) == 1


# ---------- OrderRejected ----------


def test_a_rejected_order_is_never_charged(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    order_id = new_order()
    assert consume(payments, placed(order_id), rejected(order_id)) == []
    assert consume(payments, reserved(order_id)) == []  # late: its order ended already

    assert status_of(stored, order_id) is PaymentStatus.CANCELLED_BEFORE_CHARGE
    assert provider.intents(order_id) == []
    assert published(aws, order_id) == []


def test_a_rejected_order_that_was_charged_is_refunded_in_full(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    """The deadline rejected the order while its charge went through: the charge is refunded."""
    order_id = new_order()
    assert consume(payments, placed(order_id), reserved(order_id)) == []

    assert consume(payments, rejected(order_id)) == []
    assert consume(payments, rejected(order_id)) == []  # a duplicate refunds nothing more

    assert status_of(stored, order_id) is PaymentStatus.REFUNDED
    [refund] = provider.refunds(order_id)
    assert refund.amount == TOTAL
    events = published(aws, order_id)
    assert types_of(events) == ["PaymentSucceeded", "PaymentRefunded"]
    assert events[1]["data"]["amount_cents"] == TOTAL


# ---------- a refund is the order's own ----------


def test_a_partial_refund_by_someone_else_is_not_the_orders_refund(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    """Given a charge of 5199 of which staff refunded 500 in the provider's dashboard, When the
    order is cancelled, Then its own refund returns the remaining 4699, and says so."""
    order_id = new_order()
    assert consume(payments, placed(order_id), reserved(order_id)) == []
    [charge] = provider.charges(order_id)
    provider.client.v1.refunds.create(params={"charge": charge.id, "amount": 500})

    assert consume(payments, cancelled(order_id)) == []

    assert status_of(stored, order_id) is PaymentStatus.REFUNDED
    assert sorted(refund.amount for refund in provider.refunds(order_id)) == [500, TOTAL - 500]
    events = published(aws, order_id)
    assert types_of(events) == ["PaymentSucceeded", "PaymentRefunded"]
    ours = next(refund for refund in provider.refunds(order_id) if refund.amount == TOTAL - 500)
    assert (events[1]["data"]["refund_id"], events[1]["data"]["amount_cents"]) == (ours.id, TOTAL - 500)


def test_a_charge_refunded_in_full_by_someone_else_is_not_refunded_again(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    order_id = new_order()
    assert consume(payments, placed(order_id), reserved(order_id)) == []
    [charge] = provider.charges(order_id)
    provider.client.v1.refunds.create(params={"charge": charge.id})

    assert consume(payments, cancelled(order_id)) == []

    assert status_of(stored, order_id) is PaymentStatus.REFUNDED
    assert [refund.amount for refund in provider.refunds(order_id)] == [TOTAL]
    events = published(aws, order_id)
    assert events[1]["data"] | {"order_id": "-"} == {
        "order_id": "-",
        "refund_id": "none",
        "amount_cents": 0,
        "currency": "usd",
    }


# ---------- a refusal is a decline ----------


def test_a_payment_method_the_provider_refuses_fails_the_payment_at_once(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection
) -> None:
    """localstripe answers 400 to a payment method id that is not one of its own (``visa_4242``):
    the payment fails with the provider's word instead of being retried until dead-lettered."""
    order_id = new_order()

    assert consume(payments, placed(order_id, payment_method="visa_4242"), reserved(order_id)) == []

    assert status_of(stored, order_id) is PaymentStatus.FAILED
    [event] = published(aws, order_id)
    assert event["event_type"] == "PaymentFailed"
    assert event["data"]["reason"].startswith("The payment provider refused the payment")
