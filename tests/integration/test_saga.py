"""The whole saga in-process: HTTP calls to the handlers, every event carried by moto's SNS
and SQS to the next handler (each message handed over twice, as at-least-once delivery may),
payments charging and refunding through localstripe; stock, payments and emails checked at
each step."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from pymongo import MongoClient

from inventory import api as inventory_api
from inventory import consumer as inventory_consumer
from notifications import app as notifications_app
from orders import api as orders_api
from orders import consumer as orders_consumer
from orders import deadline as orders_deadline
from payments import consumer as payments_consumer
from shop_common.clock import utc_now
from tests.conftest import AwsResources, LocalStripe
from tests.integration.test_payments import Stripe
from tests.support import (
    ADA,
    ServiceLogs,
    ServiceRuntime,
    api_event,
    deliver_all,
    deliver_sns,
    received_events,
    sample_event,
    service_logs,
)
from users import api as users_api

Handler = Callable[[dict[str, Any], Any], Any]
# Every consumer gets every message twice: the second delivery must change nothing.
DELIVERIES = 2
# Each consumer's handler, by the name of its queue in AwsResources.queue_urls.
HANDLERS: dict[str, Handler] = {
    "inventory": inventory_consumer.handler,
    "orders": orders_consumer.handler,
    "payments": payments_consumer.handler,
    "notifications": notifications_app.handler,
}


class Shop:
    """Drives the services like API Gateway and the event source mappings would, with the
    payments service pointed at localstripe."""

    def __init__(self, runtimes: dict[str, ServiceRuntime], aws: AwsResources, localstripe: LocalStripe) -> None:
        self.runtimes, self.aws = runtimes, aws
        runtimes["payments"].env |= {"STRIPE_API_KEY": localstripe.api_key, "STRIPE_API_BASE": localstripe.url}
        self.stripe = Stripe(localstripe)

    def settle(self, consumers: tuple[str, ...] = tuple(HANDLERS)) -> None:
        """Deliver events to ``consumers`` until their queues are empty (the saga has come to rest)."""
        while sum(self._deliver(consumer) for consumer in consumers):
            pass

    def _deliver(self, consumer: str) -> int:
        queue_url, runtime, handler = self.aws.queue_urls[consumer], self.runtimes[consumer], HANDLERS[consumer]
        if consumer == "notifications":
            return deliver_sns(queue_url, runtime, handler, DELIVERIES)
        return deliver_all(queue_url, runtime, handler, DELIVERIES)

    def stock(self, sku: str) -> tuple[int, int]:
        product = self.runtimes["inventory"].http(
            inventory_api.handler, api_event("api-inventory-get", path_params={"sku": sku})
        )
        return product.body["available"], product.body["reserved"]

    def order(self, order_id: str) -> Any:
        return (
            self.runtimes["orders"]
            .http(orders_api.handler, api_event("api-orders-get", path_params={"order_id": order_id}))
            .body
        )

    def place(self, items: list[dict[str, Any]], payment_method: str, headers: dict[str, str] | None = None) -> str:
        body = {"items": items, "payment_method": payment_method}
        # A key of its own: the sample request's key would replay the first order placed with it.
        headers = {"Idempotency-Key": str(uuid.uuid4()), **(headers or {})}
        placed = self.runtimes["orders"].http(
            orders_api.handler, api_event("api-orders-create", body=body, headers=headers)
        )
        assert (placed.status, placed.body["status"], placed.body["user_id"]) == (201, "PENDING", ADA.user_id)
        return str(placed.body["order_id"])

    def cancel(self, order_id: str) -> Any:
        return self.runtimes["orders"].http(
            orders_api.handler, api_event("api-orders-cancel", path_params={"order_id": order_id})
        )


def emails() -> list[tuple[str, str, str]]:
    messages = ses_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"].sent_messages
    return [(message.destinations["ToAddresses"][0], message.subject, message.body) for message in messages]


def subjects() -> list[str]:
    return [subject for _, subject, _ in emails()]


TOTAL = 2 * 2500 + 199
ITEMS = [{"sku": "BOOK-1", "quantity": 2}, {"sku": "PEN-7", "quantity": 1}]


@pytest.fixture
def shop(runtimes: dict[str, ServiceRuntime], aws: AwsResources, localstripe: LocalStripe) -> Shop:
    """Two products in stock, and a registered customer (who got the welcome email)."""
    shop = Shop(runtimes, aws, localstripe)
    for sku, price, available in [("BOOK-1", 2500, 3), ("PEN-7", 199, 10)]:
        body = {"name": sku, "unit_price_cents": price, "available": available}
        stocked = runtimes["inventory"].http(
            inventory_api.handler, api_event("api-inventory-put", body=body, path_params={"sku": sku})
        )
        assert stocked.status == 200
    user = runtimes["users"].http(users_api.handler, api_event("api-users-create")).body
    assert user["user_id"] == ADA.user_id  # the sample's caller registered themselves
    shop.settle()
    assert [(to, subject) for to, subject, _ in emails()] == [("ada@example.com", "Welcome to the shop")]
    received_events(aws.queue_urls["tap"])  # each test reads the events of its own orders
    return shop


def test_a_paid_order_is_confirmed_and_its_cancel_refunds_it_and_returns_its_stock_once(
    shop: Shop, aws: AwsResources
) -> None:
    order_id = shop.place(ITEMS, "pm_card_visa", {"X-Correlation-Id": "flow-1"})
    shop.settle()

    paid = shop.order(order_id)
    assert (paid["status"], paid["total_cents"], paid["payment_status"]) == ("CONFIRMED", TOTAL, "succeeded")
    [charge] = shop.stripe.charges(order_id)
    assert (charge.amount, charge.currency) == (TOTAL, "usd")
    assert (shop.stock("BOOK-1"), shop.stock("PEN-7")) == ((1, 2), (9, 1))
    assert emails()[-1][:2] == ("ada@example.com", f"Your order {order_id[:8]} is confirmed")
    assert "We charged $51.99 for it." in emails()[-1][2]
    # the correlation id of the request that placed the order travels through its whole flow
    assert [(event["event_type"], event["correlation_id"]) for event in received_events(aws.queue_urls["tap"])] == [
        ("OrderPlaced", "flow-1"),
        ("InventoryReserved", "flow-1"),
        ("PaymentSucceeded", "flow-1"),
        ("OrderConfirmed", "flow-1"),
    ]

    for _ in range(2):
        cancelled = shop.cancel(order_id)
        assert (cancelled.status, cancelled.body["status"]) == (200, "CANCELLED")
    shop.settle()

    refunded = shop.order(order_id)
    assert (refunded["status"], refunded["payment_status"]) == ("CANCELLED", "refunded")
    assert [entry["status"] for entry in refunded["history"]] == ["PENDING", "CONFIRMED", "CANCELLED"]
    [refund] = shop.stripe.refunds(order_id)
    assert (refund.amount, refund.status) == (TOTAL, "succeeded")
    assert len(shop.stripe.charges(order_id)) == 1
    assert (shop.stock("BOOK-1"), shop.stock("PEN-7")) == ((3, 0), (10, 0))
    assert subjects()[1:] == [
        f"Your order {order_id[:8]} is confirmed",
        f"Your order {order_id[:8]} is cancelled",
        f"Your order {order_id[:8]} is refunded",
    ]
    assert emails()[-1][0] == "ada@example.com"
    assert f"We refunded $51.99 for your cancelled order {order_id}." in emails()[-1][2]
    assert all(dead_letter_queue_is_empty(aws, name) for name in ("orders", "inventory", "payments"))


def test_a_declined_card_rejects_the_order_saying_why_and_returns_its_stock_once(shop: Shop, aws: AwsResources) -> None:
    order_id = shop.place([{"sku": "PEN-7", "quantity": 4}], "pm_card_chargeCustomerFail")
    shop.settle()

    declined = shop.order(order_id)
    assert (declined["status"], declined["payment_status"]) == ("REJECTED", "failed")
    assert declined["reason"] == "The payment failed: Your card was declined."
    assert [entry["status"] for entry in declined["history"]] == ["PENDING", "REJECTED"]
    assert shop.stripe.charges(order_id) == []
    assert shop.stock("PEN-7") == (10, 0)
    assert shop.cancel(order_id).status == 409
    assert emails()[-1][:2] == ("ada@example.com", f"We could not accept your order {order_id[:8]}")
    assert "The payment failed: Your card was declined." in emails()[-1][2]
    assert len(emails()) == 2
    assert all(dead_letter_queue_is_empty(aws, name) for name in ("orders", "inventory", "payments"))


def test_an_order_the_stock_cannot_cover_is_rejected_naming_the_sku_and_never_charged(
    shop: Shop, aws: AwsResources
) -> None:
    order_id = shop.place([{"sku": "BOOK-1", "quantity": 4}, {"sku": "PEN-7", "quantity": 1}], "pm_card_visa")
    shop.settle()

    short = shop.order(order_id)
    assert (short["status"], short["payment_status"]) == ("REJECTED", None)
    assert "BOOK-1" in short["reason"]
    assert (shop.stock("BOOK-1"), shop.stock("PEN-7")) == ((3, 0), (10, 0))
    assert shop.stripe.intents(order_id) == []
    assert subjects()[1:] == [f"We could not accept your order {order_id[:8]}"]
    assert all(dead_letter_queue_is_empty(aws, name) for name in ("orders", "inventory", "payments"))


@pytest.fixture
def logs() -> Iterator[ServiceLogs]:
    """Every service's log lines at DEBUG, from before the ``shop`` fixture registers the customer
    (requested before it)."""
    with service_logs() as captured:
        yield captured


def test_no_log_line_of_a_whole_saga_carries_the_customers_email_name_or_token(logs: ServiceLogs, shop: Shop) -> None:
    order_id = shop.place(ITEMS, "pm_card_visa")
    shop.settle()
    assert shop.cancel(order_id).status == 200
    shop.settle()
    assert shop.order(order_id)["payment_status"] == "refunded"

    registration = sample_event("api-users-create")
    token = registration["headers"]["Authorization"].removeprefix("Bearer ")
    name = json.loads(registration["body"])["name"]
    secrets = [ADA.email.lower(), name.lower(), name.split()[-1].lower(), token.lower()]
    # the lines of every step are there: registered, placed, decided, paid, refunded, emailed
    messages = [record["message"] for record in logs.records()]
    assert {"User registered", "Order placed", "Payment handled", "Order cancel requested"} <= set(messages)
    assert messages.count("Email sent") == 4
    assert [line for line in logs.lines() if any(secret in line.lower() for secret in secrets)] == []


def dead_letter_queue_is_empty(aws: AwsResources, name: str) -> bool:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=aws.dead_letter_queue_urls[name], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return attributes["ApproximateNumberOfMessages"] == "0"


# ---------- the deadline: every saga ends ----------


def past_its_deadline(shop: Shop, mongo_client: MongoClient, order_id: str) -> None:
    """Let 31 minutes pass for the order (the deadline is 30)."""
    orders = mongo_client[shop.runtimes["orders"].env["MONGODB_DATABASE"]]["orders"]
    orders.update_one({"_id": order_id}, {"$set": {"created_at": utc_now() - timedelta(minutes=31)}})


def test_an_order_the_provider_never_charged_is_rejected_at_its_deadline_and_gives_its_stock_back(
    shop: Shop, aws: AwsResources, mongo_client: MongoClient
) -> None:
    """Given the payment provider unreachable, When an order is placed and stays PENDING past its
    deadline, Then the orders service rejects it, inventory returns its stock, payments never
    charges it, and the customer is told why."""
    shop.runtimes["payments"].env["STRIPE_API_BASE"] = "http://127.0.0.1:9"  # nothing listens there
    order_id = shop.place(ITEMS, "pm_card_visa", {"X-Correlation-Id": "flow-late"})
    shop.settle()
    assert shop.order(order_id)["status"] == "PENDING"
    assert (shop.stock("BOOK-1"), shop.stock("PEN-7")) == ((1, 2), (9, 1))

    assert shop.runtimes["orders"].invoke(orders_deadline.handler, {}) == {"rejected": []}  # not yet
    past_its_deadline(shop, mongo_client, order_id)
    assert shop.runtimes["orders"].invoke(orders_deadline.handler, {}) == {"rejected": [order_id]}
    assert shop.runtimes["orders"].invoke(orders_deadline.handler, {}) == {"rejected": []}  # once
    shop.settle()

    late = shop.order(order_id)
    assert (late["status"], late["reason"], late["payment_status"]) == (
        "REJECTED",
        "The order could not be completed in time.",
        None,
    )
    assert (shop.stock("BOOK-1"), shop.stock("PEN-7")) == ((3, 0), (10, 0))
    assert shop.stripe.intents(order_id) == []
    rejected = [event for event in received_events(aws.queue_urls["tap"]) if event["event_type"] == "OrderRejected"]
    assert [event["correlation_id"] for event in rejected] == ["flow-late"]
    assert emails()[-1][:2] == ("ada@example.com", f"We could not accept your order {order_id[:8]}")
    assert all(dead_letter_queue_is_empty(aws, name) for name in ("orders", "inventory", "payments"))


def test_an_order_charged_after_its_deadline_is_refunded_in_full(
    shop: Shop, aws: AwsResources, mongo_client: MongoClient
) -> None:
    """Given an order whose charge went through while the orders service did not hear of it, When
    its deadline passes first, Then it ends REJECTED and its charge is refunded in full."""
    order_id = shop.place(ITEMS, "pm_card_visa")
    shop.settle(consumers=("inventory", "payments"))  # charged; the orders queue holds PaymentSucceeded
    assert len(shop.stripe.charges(order_id)) == 1

    past_its_deadline(shop, mongo_client, order_id)
    assert shop.runtimes["orders"].invoke(orders_deadline.handler, {}) == {"rejected": [order_id]}
    shop.settle()

    late = shop.order(order_id)
    assert (late["status"], late["payment_status"]) == ("REJECTED", "refunded")
    [refund] = shop.stripe.refunds(order_id)
    assert refund.amount == TOTAL
    assert (shop.stock("BOOK-1"), shop.stock("PEN-7")) == ((3, 0), (10, 0))
    assert all(dead_letter_queue_is_empty(aws, name) for name in ("orders", "inventory", "payments"))
