"""The whole saga in-process: HTTP calls to the handlers, every event carried by moto's SNS
and SQS to the next handler, stock and emails checked at each step."""

from __future__ import annotations

from typing import Any

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from inventory import api as inventory_api
from inventory import consumer as inventory_consumer
from notifications import app as notifications_app
from orders import api as orders_api
from orders import consumer as orders_consumer
from tests.conftest import AwsResources
from tests.support import ADA, ServiceRuntime, api_event, deliver_all, deliver_sns, received_events
from users import api as users_api


class Shop:
    """Drives the services like API Gateway and the event source mappings would."""

    def __init__(self, runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> None:
        self.runtimes, self.aws = runtimes, aws

    def settle(self) -> None:
        """Deliver events until every queue is empty (the saga has come to rest)."""
        while (
            deliver_all(self.aws.queue_urls["inventory"], self.runtimes["inventory"], inventory_consumer.handler)
            + deliver_all(self.aws.queue_urls["orders"], self.runtimes["orders"], orders_consumer.handler)
            + deliver_sns(
                self.aws.queue_urls["notifications"], self.runtimes["notifications"], notifications_app.handler
            )
        ):
            pass

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


def emails() -> list[tuple[str, str]]:
    messages = ses_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"].sent_messages
    return [(message.destinations["ToAddresses"][0], message.subject) for message in messages]


def test_confirm_reject_and_cancel_through_every_event(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> None:
    shop = Shop(runtimes, aws)
    for sku, price, available in [("BOOK-1", 2500, 3), ("PEN-7", 199, 10)]:
        body = {"name": sku, "unit_price_cents": price, "available": available}
        stocked = runtimes["inventory"].http(
            inventory_api.handler, api_event("api-inventory-put", body=body, path_params={"sku": sku})
        )
        assert stocked.status == 200
    user = runtimes["users"].http(users_api.handler, api_event("api-users-create")).body
    assert user["user_id"] == ADA.user_id  # the sample's caller registered themselves
    shop.settle()
    assert emails() == [("ada@example.com", "Welcome to the shop")]

    # 1. an order the stock covers: CONFIRMED with the inventory's prices
    items = [{"sku": "BOOK-1", "quantity": 2}, {"sku": "PEN-7", "quantity": 1}]
    placed = (
        runtimes["orders"]
        .http(
            orders_api.handler,
            api_event(
                "api-orders-create",
                body={"items": items, "payment_method": "pm_card_visa"},
                headers={"X-Correlation-Id": "flow-1"},
            ),
        )
        .body
    )
    assert (placed["status"], placed["user_id"]) == ("PENDING", ADA.user_id)
    shop.settle()
    confirmed = shop.order(placed["order_id"])
    assert (confirmed["status"], confirmed["total_cents"]) == ("CONFIRMED", 2 * 2500 + 199)
    assert shop.stock("BOOK-1") == (1, 2)
    assert shop.stock("PEN-7") == (9, 1)
    assert emails()[-1] == ("ada@example.com", f"Your order {placed['order_id'][:8]} is confirmed")

    # 2. an order the stock cannot cover: REJECTED, naming the sku, stock untouched
    too_many = [{"sku": "BOOK-1", "quantity": 2}, {"sku": "PEN-7", "quantity": 1}]
    rejected_id = (
        runtimes["orders"]
        .http(
            orders_api.handler,
            api_event(
                "api-orders-create",
                body={"items": too_many, "payment_method": "pm_card_visa"},
                headers={"Idempotency-Key": "k-2"},
            ),
        )
        .body["order_id"]
    )
    shop.settle()
    rejected = shop.order(rejected_id)
    assert rejected["status"] == "REJECTED"
    assert "BOOK-1" in rejected["reason"]
    assert shop.stock("BOOK-1") == (1, 2)
    assert shop.stock("PEN-7") == (9, 1)
    assert emails()[-1] == ("ada@example.com", f"We could not accept your order {rejected_id[:8]}")

    # 3. cancelling the confirmed order returns its stock, once
    for _ in range(2):
        cancelled = runtimes["orders"].http(
            orders_api.handler, api_event("api-orders-cancel", path_params={"order_id": placed["order_id"]})
        )
        assert (cancelled.status, cancelled.body["status"]) == (200, "CANCELLED")
    shop.settle()
    assert shop.stock("BOOK-1") == (3, 0)
    assert shop.stock("PEN-7") == (10, 0)
    assert [status["status"] for status in shop.order(placed["order_id"])["history"]] == [
        "PENDING",
        "CONFIRMED",
        "CANCELLED",
    ]
    assert [subject for _, subject in emails()] == [
        "Welcome to the shop",
        f"Your order {placed['order_id'][:8]} is confirmed",
        f"We could not accept your order {rejected_id[:8]}",
        f"Your order {placed['order_id'][:8]} is cancelled",
    ]
    assert all(dead_letter_queue_is_empty(aws, name) for name in ("orders", "inventory"))
    # the correlation id of the request that placed the order travels through its whole flow
    first_flow = [
        (event["event_type"], event["correlation_id"])
        for event in received_events(aws.queue_urls["tap"])
        if event["data"].get("order_id") == placed["order_id"] and event["event_type"] != "OrderCancelled"
    ]
    assert first_flow == [("OrderPlaced", "flow-1"), ("InventoryReserved", "flow-1"), ("OrderConfirmed", "flow-1")]


def dead_letter_queue_is_empty(aws: AwsResources, name: str) -> bool:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=aws.dead_letter_queue_urls[name], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return attributes["ApproximateNumberOfMessages"] == "0"
