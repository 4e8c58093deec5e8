"""The payments SQS consumer on a real mongod, moto and localstripe (charged through the real
``stripe`` library): charge once, decline, authentication needed, amounts Stripe cannot take,
cancel before and after the charge, duplicates, reordering, concurrency, poison records, the
subscription's filter and the outbox relay."""

from __future__ import annotations

import itertools
import json
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from unittest import mock

import boto3
import pytest
import stripe
from pymongo import MongoClient
from pymongo.collection import Collection

from devstack.template import load_template
from devstack.worker import LocalContext
from payments import consumer, relay
from payments.domain import (
    MAX_CHARGE_CENTS,
    NEEDS_AUTHENTICATION_REASON,
    NOTHING_TO_CHARGE_REASON,
    PaymentStatus,
    too_large_reason,
)
from shop_common.clock import utc_now
from shop_common.consumer import make_sqs_handler
from shop_common.publisher import SnsPublisher
from shop_common.runtime import within_invocation
from tests.conftest import AwsResources, LocalStripe
from tests.support import (
    ServiceRuntime,
    deliver_all,
    envelope,
    failed_ids,
    received_events,
    sample_event,
    sqs_batch,
)

PAYMENTS_TIMEOUT = load_template()["Resources"]["PaymentsEventsFunction"]["Properties"]["Timeout"]
TOTAL = 5199
Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class PaymentsRuntime(ServiceRuntime):
    """Invokes the payments handlers with the consumer's own timeout (the provider starts a call
    only if it can end within the invocation)."""

    def invoke(self, handler: Handler, event: dict[str, Any]) -> Any:
        with mock.patch.dict(os.environ, self.env):
            return handler(event, LocalContext.fresh("payments-events", PAYMENTS_TIMEOUT))


@pytest.fixture
def payments(runtimes: dict[str, ServiceRuntime], localstripe: LocalStripe) -> PaymentsRuntime:
    env = runtimes["payments"].env | {"STRIPE_API_KEY": localstripe.api_key, "STRIPE_API_BASE": localstripe.url}
    return PaymentsRuntime(env)


@pytest.fixture
def stored(payments: PaymentsRuntime, mongo_client: MongoClient) -> Collection:
    return mongo_client[payments.env["MONGODB_DATABASE"]]["payments"]


class Stripe:
    """What localstripe holds for an order, asked through the stripe library."""

    def __init__(self, localstripe: LocalStripe) -> None:
        self.client = stripe.StripeClient(localstripe.api_key, base_addresses={"api": localstripe.url})

    def intents(self, order_id: str) -> list[stripe.PaymentIntent]:
        listed = self.client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
        return [intent for intent in listed if intent.metadata.to_dict().get("order_id") == order_id]

    def charges(self, order_id: str) -> list[stripe.Charge]:
        """Every successful charge of the order's intents."""
        intent_ids = {intent.id for intent in self.intents(order_id)}
        listed = self.client.v1.charges.list(params={"limit": 100}).auto_paging_iter()
        return [c for c in listed if c.payment_intent in intent_ids and c.status == "succeeded"]

    def refunds(self, order_id: str) -> list[stripe.Refund]:
        return [refund for charge in self.charges(order_id) if charge.refunds for refund in charge.refunds.data]

    def payment_method(self, card_number: str) -> str:
        card: stripe.params.PaymentMethodCreateParamsCard = {
            "number": card_number,
            "exp_month": 12,
            "exp_year": 2030,
            "cvc": "123",
        }
        return self.client.v1.payment_methods.create(params={"type": "card", "card": card}).id


@pytest.fixture
def provider(localstripe: LocalStripe) -> Stripe:
    return Stripe(localstripe)


def new_order() -> str:
    return str(uuid.uuid4())


def placed(order_id: str, payment_method: str = "pm_card_visa") -> str:
    data = {
        "order_id": order_id,
        "user_id": "user-1",
        "items": [{"sku": "BOOK-1", "quantity": 2}, {"sku": "PEN-7", "quantity": 1}],
        "payment_method": payment_method,
    }
    return envelope("OrderPlaced", "orders", data, "corr-place")


def reserved(order_id: str, total: int = TOTAL) -> str:
    lines = [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": total}]
    data = {"order_id": order_id, "lines": lines, "total_cents": total}
    return envelope("InventoryReserved", "inventory", data, "corr-place")


def cancelled(order_id: str) -> str:
    data = {"order_id": order_id, "user_id": "user-1", "items": [{"sku": "BOOK-1", "quantity": 2}]}
    return envelope("OrderCancelled", "orders", data, "corr-cancel")


def another_container() -> Handler:
    """The consumer as a second container runs it, with a batch processor of its own: a container
    handles one batch at a time, so threads of this process must not share one."""
    return within_invocation(make_sqs_handler(consumer.handle_event, consumer.logger))


def consume(payments: PaymentsRuntime, *bodies: str, handler: Handler = consumer.handler) -> list[str]:
    """Feed one SQS batch to the consumer; the ids of the records it reports failed."""
    return failed_ids(payments.invoke(handler, sqs_batch("sqs-payments-batch", list(bodies))))


def published(aws: AwsResources, order_id: str | None = None) -> list[dict[str, Any]]:
    """The payment events published since the last call (of ``order_id`` if given)."""
    return [
        event
        for event in received_events(aws.queue_urls["tap"])
        if event["source"] == "payments" and order_id in (None, event["data"]["order_id"])
    ]


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [event["event_type"] for event in events]


def status_of(stored: Collection, order_id: str) -> PaymentStatus:
    document = stored.find_one({"_id": order_id})
    assert document is not None
    return PaymentStatus(document["status"])


# ---------- charging ----------


def test_sample_batch_is_accepted_as_is(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    """events/sqs-payments-batch.json (for `sam local invoke -e`): an order placed and reserved is
    charged; the cancel of another order leaves its tombstone."""
    event = sample_event("sqs-payments-batch")
    assert failed_ids(payments.invoke(consumer.handler, event)) == []
    charged, cancelled_first = (json.loads(r["body"])["data"]["order_id"] for r in event["Records"][1:])
    assert status_of(stored, charged) is PaymentStatus.SUCCEEDED
    assert status_of(stored, cancelled_first) is PaymentStatus.CANCELLED_BEFORE_CHARGE
    [succeeded] = published(aws)
    assert succeeded["event_type"] == "PaymentSucceeded"
    intent = provider.client.v1.payment_intents.retrieve(succeeded["data"]["payment_id"])
    assert (intent.status, intent.amount, intent.metadata.to_dict()) == ("succeeded", 5199, {"order_id": charged})


def test_a_reserved_order_is_charged_its_total_once(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    order_id = new_order()
    assert consume(payments, placed(order_id)) == []
    assert provider.intents(order_id) == []  # nothing is charged before the stock is reserved

    assert consume(payments, reserved(order_id)) == []

    [charge] = provider.charges(order_id)
    assert (charge.amount, charge.currency) == (TOTAL, "usd")
    [event] = published(aws, order_id)
    assert event["event_type"] == "PaymentSucceeded"
    assert event["data"] == {
        "order_id": order_id,
        "payment_id": charge.payment_intent,
        "amount_cents": TOTAL,
        "currency": "usd",
    }
    assert event["correlation_id"] == "corr-place"
    document = stored.find_one({"_id": order_id})
    assert document is not None
    assert (document["status"], document["intent_id"], document["lease"]) == ("SUCCEEDED", charge.payment_intent, None)
    assert document["pending_events"] == []  # published right away


def test_the_reservation_may_arrive_before_the_order(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    order_id = new_order()
    assert consume(payments, reserved(order_id)) == []
    assert status_of(stored, order_id) is PaymentStatus.AWAITING_METHOD
    assert consume(payments, placed(order_id)) == []
    assert len(provider.charges(order_id)) == 1
    assert types_of(published(aws, order_id)) == ["PaymentSucceeded"]


def test_the_currency_is_a_setting(payments: PaymentsRuntime, aws: AwsResources, provider: Stripe) -> None:
    payments.env["PAYMENT_CURRENCY"] = "eur"
    order_id = new_order()
    assert consume(payments, placed(order_id), reserved(order_id)) == []
    [charge] = provider.charges(order_id)
    assert charge.currency == "eur"
    [event] = published(aws, order_id)
    assert event["data"]["currency"] == "eur"


def test_a_declined_card_fails_the_payment_with_its_decline_code(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    order_id = new_order()
    assert consume(payments, placed(order_id, "pm_card_chargeCustomerFail"), reserved(order_id)) == []

    [event] = published(aws, order_id)
    assert event["event_type"] == "PaymentFailed"
    assert event["data"] == {"order_id": order_id, "reason": "Your card was declined.", "decline_code": "card_declined"}
    assert status_of(stored, order_id) is PaymentStatus.FAILED
    assert provider.charges(order_id) == []
    # a redelivery asks nothing again and announces nothing again
    assert consume(payments, reserved(order_id)) == []
    assert published(aws, order_id) == []
    assert len(provider.intents(order_id)) == 1


def test_a_payment_needing_3d_secure_fails_and_its_intent_is_cancelled(
    payments: PaymentsRuntime, aws: AwsResources, provider: Stripe
) -> None:
    order_id = new_order()
    needs_authentication = provider.payment_method("4000002760003184")  # Stripe's 3-D Secure test card
    assert consume(payments, placed(order_id, needs_authentication), reserved(order_id)) == []

    [event] = published(aws, order_id)
    assert event["event_type"] == "PaymentFailed"
    assert event["data"]["reason"] == NEEDS_AUTHENTICATION_REASON
    assert event["data"]["decline_code"] is None
    [intent] = provider.intents(order_id)
    assert intent.status == "canceled"  # it can never be completed later


def test_an_unknown_payment_method_fails_the_payment(
    payments: PaymentsRuntime, aws: AwsResources, provider: Stripe
) -> None:
    order_id = new_order()
    assert consume(payments, placed(order_id, "pm_no_such_method"), reserved(order_id)) == []
    [event] = published(aws, order_id)
    assert event["event_type"] == "PaymentFailed"
    assert event["data"]["reason"].startswith("The payment provider refused the payment")
    assert provider.intents(order_id) == []


@pytest.mark.parametrize(
    ("total", "reason"),
    [(MAX_CHARGE_CENTS + 1, too_large_reason(MAX_CHARGE_CENTS + 1)), (0, NOTHING_TO_CHARGE_REASON)],
    ids=["above Stripe's maximum", "zero"],
)
def test_a_total_stripe_cannot_charge_fails_at_once_without_asking_it(
    payments: PaymentsRuntime, aws: AwsResources, provider: Stripe, total: int, reason: str
) -> None:
    order_id = new_order()
    assert consume(payments, placed(order_id), reserved(order_id, total)) == []
    [event] = published(aws, order_id)
    assert event["event_type"] == "PaymentFailed"
    assert event["data"] == {"order_id": order_id, "reason": reason, "decline_code": None}
    assert provider.intents(order_id) == []


def test_the_largest_total_stripe_takes_is_charged(payments: PaymentsRuntime, provider: Stripe) -> None:
    order_id = new_order()
    assert consume(payments, placed(order_id), reserved(order_id, MAX_CHARGE_CENTS)) == []
    [charge] = provider.charges(order_id)
    assert charge.amount == MAX_CHARGE_CENTS


# ---------- cancelling ----------


def test_a_cancel_before_the_reservation_leaves_nothing_to_charge(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    order_id = new_order()
    assert consume(payments, placed(order_id), cancelled(order_id), reserved(order_id)) == []
    assert status_of(stored, order_id) is PaymentStatus.CANCELLED_BEFORE_CHARGE
    assert provider.intents(order_id) == []
    assert published(aws, order_id) == []


def test_a_cancel_that_overtakes_its_order_leaves_a_tombstone(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    order_id = new_order()
    assert consume(payments, cancelled(order_id)) == []
    assert status_of(stored, order_id) is PaymentStatus.CANCELLED_BEFORE_CHARGE
    assert consume(payments, reserved(order_id), placed(order_id)) == []
    assert status_of(stored, order_id) is PaymentStatus.CANCELLED_BEFORE_CHARGE
    assert provider.intents(order_id) == []
    assert published(aws, order_id) == []


def test_a_cancel_after_the_charge_refunds_it_once(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    order_id = new_order()
    assert consume(payments, placed(order_id), reserved(order_id)) == []
    assert types_of(published(aws, order_id)) == ["PaymentSucceeded"]

    assert consume(payments, cancelled(order_id), cancelled(order_id)) == []
    assert consume(payments, cancelled(order_id)) == []

    [refund] = provider.refunds(order_id)
    assert (refund.amount, refund.status) == (TOTAL, "succeeded")
    [event] = published(aws, order_id)
    assert event["event_type"] == "PaymentRefunded"
    assert event["data"] == {"order_id": order_id, "refund_id": refund.id, "amount_cents": TOTAL, "currency": "usd"}
    assert event["correlation_id"] == "corr-cancel"
    assert status_of(stored, order_id) is PaymentStatus.REFUNDED


def test_a_cancel_after_a_failed_payment_refunds_nothing(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    order_id = new_order()
    assert consume(payments, placed(order_id, "pm_card_chargeCustomerFail"), reserved(order_id)) == []
    assert consume(payments, cancelled(order_id)) == []
    assert status_of(stored, order_id) is PaymentStatus.FAILED
    assert types_of(published(aws, order_id)) == ["PaymentFailed"]


# ---------- duplicates, reordering, concurrency, poison ----------

EVENTS: dict[str, Callable[[str], str]] = {"placed": placed, "reserved": reserved, "cancelled": cancelled}


@pytest.mark.parametrize("order", list(itertools.permutations(EVENTS)), ids="-".join)
def test_every_message_twice_in_any_order(
    payments: PaymentsRuntime, aws: AwsResources, provider: Stripe, order: tuple[str, ...]
) -> None:
    """Each event delivered twice, in every order: charged only if the cancel came last, and then
    refunded; never charged or refunded twice, never announced twice."""
    order_id = new_order()
    for name in order:
        assert consume(payments, EVENTS[name](order_id)) == []
        assert consume(payments, EVENTS[name](order_id)) == []

    events = types_of(published(aws, order_id))
    if order[-1] == "cancelled":
        assert len(provider.charges(order_id)) == 1
        assert len(provider.refunds(order_id)) == 1
        assert events == ["PaymentSucceeded", "PaymentRefunded"]
    else:
        assert provider.intents(order_id) == []
        assert events == []


def test_concurrent_reservations_charge_once(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    """Eight deliveries of one InventoryReserved at once: one charges, the others find it done or
    in progress (then their record is retried, and finds it done)."""
    order_id = new_order()
    assert consume(payments, placed(order_id)) == []
    barrier = threading.Barrier(8)
    retried: list[str] = []

    def deliver() -> None:
        barrier.wait()
        retried.extend(consume(payments, reserved(order_id), handler=another_container()))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in retried:  # what SQS redelivers after the visibility timeout
        assert consume(payments, reserved(order_id)) == []

    assert len(provider.intents(order_id)) == 1
    assert len(provider.charges(order_id)) == 1
    assert types_of(published(aws, order_id)) == ["PaymentSucceeded"]
    assert status_of(stored, order_id) is PaymentStatus.SUCCEEDED


def test_concurrent_cancels_refund_once(payments: PaymentsRuntime, aws: AwsResources, provider: Stripe) -> None:
    order_id = new_order()
    assert consume(payments, placed(order_id), reserved(order_id)) == []
    barrier = threading.Barrier(6)
    retried: list[str] = []

    def deliver() -> None:
        barrier.wait()
        retried.extend(consume(payments, cancelled(order_id), handler=another_container()))

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in retried:
        assert consume(payments, cancelled(order_id)) == []

    assert len(provider.refunds(order_id)) == 1
    assert types_of(published(aws, order_id)) == ["PaymentSucceeded", "PaymentRefunded"]


def test_a_lease_left_by_a_stopped_invocation_is_taken_over_once_expired(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection, provider: Stripe
) -> None:
    """An invocation stopped (timeout, crash) while holding the provider leaves its lease: while it
    is live the record is retried later; once expired, the next delivery charges."""
    order_id = new_order()
    assert consume(payments, reserved(order_id)) == []
    # as if an invocation had started charging and stopped before creating the intent
    stored.update_one(
        {"_id": order_id},
        {
            "$set": {
                "status": "CHARGING",
                "payment_method": "pm_card_visa",
                "currency": "usd",
                "lease": {"holder": "stopped", "until": utc_now() + timedelta(seconds=60)},
            }
        },
    )
    assert len(consume(payments, reserved(order_id))) == 1
    assert provider.intents(order_id) == []

    stored.update_one({"_id": order_id}, {"$set": {"lease.until": utc_now() - timedelta(seconds=1)}})
    assert consume(payments, reserved(order_id)) == []
    assert len(provider.charges(order_id)) == 1
    assert types_of(published(aws, order_id)) == ["PaymentSucceeded"]


def test_poison_records_fail_alone(payments: PaymentsRuntime, aws: AwsResources, provider: Stripe) -> None:
    order_id = new_order()
    bad_version = json.loads(placed(order_id)) | {"event_version": 2}
    poison = ["not json", json.dumps(bad_version), envelope("OrderShipped", "orders", {"order_id": order_id})]
    event = sqs_batch("sqs-payments-batch", [poison[0], placed(order_id), poison[1], reserved(order_id), poison[2]])
    failed = failed_ids(payments.invoke(consumer.handler, event))
    assert failed == [event["Records"][index]["messageId"] for index in (0, 2, 4)]
    assert len(provider.charges(order_id)) == 1


def test_events_of_other_services_are_ignored(payments: PaymentsRuntime, stored: Collection) -> None:
    order_id = new_order()
    rejected = {"order_id": order_id, "reason": "none left", "unavailable": []}
    assert consume(payments, envelope("InventoryRejected", "inventory", rejected)) == []
    assert stored.find_one({"_id": order_id}) is None


# ---------- through SNS and SQS, and the outbox relay ----------


def test_the_queue_gets_exactly_the_events_the_contract_names(
    payments: PaymentsRuntime, aws: AwsResources, provider: Stripe
) -> None:
    order_id = new_order()
    rejected = {"order_id": order_id, "reason": "none left", "unavailable": []}
    sns = boto3.client("sns")
    for body in (placed(order_id), envelope("InventoryRejected", "inventory", rejected), reserved(order_id)):
        event_type = json.loads(body)["event_type"]
        attributes = {"event_type": {"DataType": "String", "StringValue": event_type}}
        sns.publish(TopicArn=aws.topic_arn, Message=body, MessageAttributes=attributes)

    assert deliver_all(aws.queue_urls["payments"], payments, consumer.handler) == 2
    assert len(provider.charges(order_id)) == 1


def test_an_event_whose_publish_failed_is_published_by_the_relay(
    payments: PaymentsRuntime, aws: AwsResources, stored: Collection
) -> None:
    order_id = new_order()
    with mock.patch.object(SnsPublisher, "publish", side_effect=ConnectionError("SNS unreachable")):
        assert consume(payments, placed(order_id), reserved(order_id)) == []
    document = stored.find_one({"_id": order_id})
    assert document is not None
    assert [event["event_type"] for event in document["pending_events"]] == ["PaymentSucceeded"]
    assert published(aws, order_id) == []
    stored.update_one(  # older than the relay's minimum age
        {"_id": order_id}, {"$set": {"pending_events.$[].recorded_at": utc_now() - timedelta(minutes=5)}}
    )

    assert payments.invoke(relay.handler, {}) == {"published": 1}
    assert types_of(published(aws, order_id)) == ["PaymentSucceeded"]
