"""The payments consumer when talking to the provider goes wrong, on localstripe behind a proxy
(tests/stripe_proxy.py) that loses answers after localstripe acted, refuses requests, or lets a test
act at the moment a request arrives: a lost answer is looked up, never repeated into a second charge or
refund; a cancel during the charge refunds it or stops it; the key comes from the secret."""

from __future__ import annotations

import uuid
from typing import Any
from unittest import mock

import boto3
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from devstack.worker import LocalContext
from payments import consumer
from payments.domain import PaymentStatus
from payments.provider import CALL_RESERVE_SECONDS
from tests.conftest import AwsResources, LocalStripe
from tests.integration.test_payments import (
    PaymentsRuntime,
    Stripe,
    another_container,
    cancelled,
    consume,
    new_order,
    placed,
    published,
    reserved,
    status_of,
    types_of,
)
from tests.stripe_proxy import CONFIRM, CREATE_INTENT, CREATE_REFUND, LIST_REFUNDS, RETRIEVE_INTENT, StripeProxy
from tests.support import ServiceRuntime, failed_ids, sqs_batch


@pytest.fixture
def payments(runtimes: dict[str, ServiceRuntime], localstripe: LocalStripe, proxy: StripeProxy) -> PaymentsRuntime:
    env = runtimes["payments"].env | {"STRIPE_API_KEY": localstripe.api_key, "STRIPE_API_BASE": proxy.url}
    return PaymentsRuntime(env)


@pytest.fixture
def stored(payments: PaymentsRuntime, mongo_client: MongoClient) -> Collection:
    return mongo_client[payments.env["MONGODB_DATABASE"]]["payments"]


@pytest.fixture
def provider(localstripe: LocalStripe) -> Stripe:
    return Stripe(localstripe)  # asked directly, not through the proxy


def lease_of(stored: Collection, order_id: str) -> Any:
    document = stored.find_one({"_id": order_id})
    assert document is not None
    return document["lease"]


# ---------- answers lost after the provider acted ----------


def test_a_charge_whose_answer_is_lost_is_looked_up_not_charged_again(
    payments: PaymentsRuntime, aws: AwsResources, proxy: StripeProxy, provider: Stripe
) -> None:
    order_id = new_order()
    proxy.lose_answers(CONFIRM, times=2)  # the library's retry too

    assert consume(payments, placed(order_id), reserved(order_id)) == []

    assert proxy.count(CONFIRM) == 2
    assert proxy.count(RETRIEVE_INTENT) == 1
    assert len(provider.intents(order_id)) == 1
    assert len(provider.charges(order_id)) == 1
    assert types_of(published(aws, order_id)) == ["PaymentSucceeded"]


def test_a_charge_nobody_can_look_up_is_retried_later_and_asks_first(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, proxy: StripeProxy, provider: Stripe
) -> None:
    order_id = new_order()
    proxy.lose_answers(CONFIRM, times=2)
    proxy.refuse(RETRIEVE_INTENT, times=2)

    assert len(consume(payments, placed(order_id), reserved(order_id))) == 1  # the reservation, retried later
    assert status_of(stored, order_id) is PaymentStatus.CHARGING
    assert lease_of(stored, order_id) is None  # given up, so the retry need not wait for it
    assert published(aws, order_id) == []

    assert consume(payments, reserved(order_id)) == []
    assert len(provider.charges(order_id)) == 1
    assert types_of(published(aws, order_id)) == ["PaymentSucceeded"]


def test_an_intent_whose_creation_was_not_heard_of_is_never_confirmed(
    payments: PaymentsRuntime, aws: AwsResources, proxy: StripeProxy, provider: Stripe
) -> None:
    """localstripe ignores idempotency keys, so each lost creation leaves an intent behind (Stripe
    would return the first one): only the intent whose id was recorded is ever confirmed."""
    order_id = new_order()
    proxy.lose_answers(CREATE_INTENT, times=2)
    assert len(consume(payments, placed(order_id), reserved(order_id))) == 1

    assert consume(payments, reserved(order_id)) == []

    intents = provider.intents(order_id)
    assert sorted(intent.status for intent in intents) == ["requires_confirmation"] * 2 + ["succeeded"]
    assert len(provider.charges(order_id)) == 1
    assert types_of(published(aws, order_id)) == ["PaymentSucceeded"]


def test_a_refund_whose_answer_is_lost_is_looked_up_not_refunded_again(
    payments: PaymentsRuntime, aws: AwsResources, proxy: StripeProxy, provider: Stripe
) -> None:
    order_id = new_order()
    assert consume(payments, placed(order_id), reserved(order_id)) == []
    proxy.lose_answers(CREATE_REFUND, times=1)

    assert consume(payments, cancelled(order_id)) == []

    assert proxy.count(CREATE_REFUND) == 1  # not even the library repeats it
    assert len(provider.refunds(order_id)) == 1
    assert types_of(published(aws, order_id)) == ["PaymentSucceeded", "PaymentRefunded"]


def test_a_refund_nobody_can_look_up_is_retried_later_and_made_once(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, proxy: StripeProxy, provider: Stripe
) -> None:
    order_id = new_order()
    assert consume(payments, placed(order_id), reserved(order_id)) == []
    # the refund is made and its answer lost; from then on, listing the refunds fails (and its retry)
    proxy.lose_answers(CREATE_REFUND, times=1, before=lambda: proxy.refuse(LIST_REFUNDS, times=2))

    assert len(consume(payments, cancelled(order_id))) == 1
    assert status_of(stored, order_id) is PaymentStatus.REFUNDING

    assert consume(payments, cancelled(order_id)) == []
    assert proxy.count(CREATE_REFUND) == 1
    assert len(provider.refunds(order_id)) == 1
    assert types_of(published(aws, order_id)) == ["PaymentSucceeded", "PaymentRefunded"]


# ---------- a cancel while the charge is under way ----------


def test_a_cancel_arriving_as_the_charge_is_confirmed_refunds_it(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, proxy: StripeProxy, provider: Stripe
) -> None:
    order_id = new_order()
    retried: list[str] = []
    proxy.before(CONFIRM, lambda: retried.extend(consume(payments, cancelled(order_id), handler=another_container())))

    assert consume(payments, placed(order_id), reserved(order_id)) == []
    assert len(retried) == 1  # the cancel found the charge under way: its record comes back later
    assert consume(payments, cancelled(order_id)) == []

    assert len(provider.charges(order_id)) == 1
    [refund] = provider.refunds(order_id)
    assert refund.amount == provider.charges(order_id)[0].amount
    events = published(aws, order_id)
    assert types_of(events) == ["PaymentSucceeded", "PaymentRefunded"]
    assert [event["correlation_id"] for event in events] == ["corr-place", "corr-place"]
    assert status_of(stored, order_id) is PaymentStatus.REFUNDED


def test_a_cancel_arriving_before_the_intent_is_recorded_stops_the_charge(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, proxy: StripeProxy, provider: Stripe
) -> None:
    order_id = new_order()
    answers: list[str] = []
    proxy.before(
        CREATE_INTENT, lambda: answers.extend(consume(payments, cancelled(order_id), handler=another_container()))
    )

    assert consume(payments, placed(order_id), reserved(order_id)) == []

    assert answers == []
    [intent] = provider.intents(order_id)
    assert intent.status == "requires_confirmation"  # created, never confirmed
    assert provider.charges(order_id) == []
    assert published(aws, order_id) == []
    assert status_of(stored, order_id) is PaymentStatus.CANCELLED_BEFORE_CHARGE
    assert lease_of(stored, order_id) is None


def test_a_cancel_while_the_provider_is_unreachable_cancels_the_intent(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, proxy: StripeProxy, provider: Stripe
) -> None:
    order_id = new_order()
    proxy.refuse(CONFIRM, times=2)
    assert len(consume(payments, placed(order_id), reserved(order_id))) == 1

    assert consume(payments, cancelled(order_id)) == []
    assert consume(payments, reserved(order_id)) == []  # the reservation's retry

    [intent] = provider.intents(order_id)
    assert intent.status == "canceled"
    assert provider.charges(order_id) == []
    assert published(aws, order_id) == []
    assert status_of(stored, order_id) is PaymentStatus.CANCELLED_BEFORE_CHARGE


# ---------- time, key ----------


def test_no_call_starts_that_could_outlast_the_invocation(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, proxy: StripeProxy, provider: Stripe
) -> None:
    order_id = new_order()
    event = sqs_batch("sqs-payments-batch", [placed(order_id), reserved(order_id)])
    with mock.patch.dict("os.environ", payments.env):
        response = consumer.handler(event, LocalContext.fresh("payments-events", CALL_RESERVE_SECONDS - 1))

    assert failed_ids(response) == [event["Records"][1]["messageId"]]
    assert proxy.received == []
    assert lease_of(stored, order_id) is None
    assert consume(payments, reserved(order_id)) == []
    assert len(provider.charges(order_id)) == 1


def test_the_key_is_read_from_the_services_secret(
    payments: PaymentsRuntime, aws: AwsResources, localstripe: LocalStripe, provider: Stripe
) -> None:
    name = f"shop-test/payments/stripe-api-key-{uuid.uuid4().hex[:8]}"
    arn = boto3.client("secretsmanager").create_secret(Name=name, SecretString=localstripe.api_key)["ARN"]
    del payments.env["STRIPE_API_KEY"]
    payments.env["STRIPE_SECRET_ID"] = arn
    order_id = new_order()

    assert consume(payments, placed(order_id), reserved(order_id)) == []
    assert len(provider.charges(order_id)) == 1


def test_a_key_the_provider_refuses_fails_the_record_not_the_payment(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    """A configuration error is retried and dead-lettered for a human; the customer's payment
    is not failed for it."""
    payments.env["STRIPE_API_KEY"] = "not-a-stripe-key"
    order_id = new_order()

    assert len(consume(payments, placed(order_id), reserved(order_id))) == 1
    assert status_of(stored, order_id) is PaymentStatus.CHARGING
    assert lease_of(stored, order_id) is None
    assert published(aws, order_id) == []
    assert provider.intents(order_id) == []
