"""The metrics the dashboard and the alarms read (namespace Shop, dimension service), as the
handlers print them in CloudWatch's embedded metric format: each change of an order or a payment
counted once, where it is stored, however often its message is delivered (the saga hands every
message over twice); and every judgement that MongoDB is unreachable (an API's 503, a consumer's
record backed off, a notification that fails) counted as DatabaseUnavailable of its service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo import MongoClient

from inventory import api as inventory_api
from inventory import consumer as inventory_consumer
from notifications import app as notifications_app
from orders import consumer as orders_consumer
from orders import deadline as orders_deadline
from payments import consumer as payments_consumer
from tests.conftest import AwsResources
from tests.counted_metrics import BUSINESS
from tests.integration import test_http_edge, test_saga
from tests.integration.test_http_edge import EVERY_API_REQUEST, EVERY_API_REQUEST_IDS
from tests.integration.test_orders_api import orders_db, place, register_user
from tests.integration.test_saga import ITEMS, Shop, past_its_deadline
from tests.support import ServiceRuntime, emitted_metrics, envelope, failed_ids, sample_event, sqs_batch
from users import api as users_api

Handler = Callable[[dict[str, Any], Any], Any]
# The fixtures of the saga (a shop stocked, a customer registered) and of the outage (MongoDB unreachable).
shop = test_saga.shop
mongodb_down = test_http_edge.mongodb_down


def business(stdout: str) -> dict[tuple[str, str], float]:
    """The business metrics printed, by (service, name), those of value 0 left out."""
    return {key: value for key, value in emitted_metrics(stdout).items() if key[1] in BUSINESS and value}


def test_a_paid_order_then_cancelled_counts_each_change_once_though_every_message_came_twice(
    shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()  # what setting up the shop printed
    order_id = shop.place(ITEMS, "pm_card_visa")
    shop.settle()
    assert shop.order(order_id)["status"] == "CONFIRMED"
    for _ in range(2):
        assert shop.cancel(order_id).status == 200
    shop.settle()

    assert business(capsys.readouterr().out) == {
        ("orders", "OrdersPlaced"): 1,
        ("orders", "OrdersConfirmed"): 1,
        ("orders", "OrdersCancelled"): 1,
        ("payments", "PaymentsSucceeded"): 1,
        ("payments", "PaymentsRefunded"): 1,
        ("notifications", "EmailsSent"): 3,  # confirmed, cancelled, refunded
    }


def test_a_declined_card_counts_one_failed_payment_and_one_rejected_order(
    shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    order_id = shop.place([{"sku": "PEN-7", "quantity": 1}], "pm_card_chargeCustomerFail")
    shop.settle()
    assert shop.order(order_id)["status"] == "REJECTED"

    assert business(capsys.readouterr().out) == {
        ("orders", "OrdersPlaced"): 1,
        ("payments", "PaymentsFailed"): 1,
        ("orders", "OrdersRejected"): 1,
        ("notifications", "EmailsSent"): 1,  # not accepted
    }


def test_an_order_rejected_at_its_deadline_counts_once_as_expired_and_as_rejected(
    shop: Shop, mongo_client: MongoClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given an order the provider never charged (unreachable), When its deadline passes and the
    deadline function runs twice, Then it counts one OrdersExpired and one OrdersRejected."""
    shop.runtimes["payments"].env["STRIPE_API_BASE"] = "http://127.0.0.1:9"  # nothing listens there
    order_id = shop.place(ITEMS, "pm_card_visa")
    shop.settle()
    past_its_deadline(shop, mongo_client, order_id)
    capsys.readouterr()
    for _ in range(2):
        shop.runtimes["orders"].invoke(orders_deadline.handler, {})
    shop.settle()

    counted = business(capsys.readouterr().out)
    assert (counted.get(("orders", "OrdersExpired")), counted.get(("orders", "OrdersRejected"))) == (1, 1)


def database_unavailable(stdout: str) -> dict[str, float]:
    """DatabaseUnavailable as printed, by service."""
    emitted = emitted_metrics(stdout)
    return {service: value for (service, name), value in emitted.items() if name == "DatabaseUnavailable"}


@pytest.mark.parametrize(("service", "handler", "request_event"), EVERY_API_REQUEST, ids=EVERY_API_REQUEST_IDS)
def test_an_api_503_for_an_unreachable_mongodb_counts_database_unavailable_once(
    mongodb_down: dict[str, ServiceRuntime],
    service: str,
    handler: Handler,
    request_event: Callable[[], Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    assert mongodb_down[service].http(handler, request_event()).status == 503
    assert database_unavailable(capsys.readouterr().out) == {service: 1}


ORDER_PLACED = envelope(
    "OrderPlaced",
    "orders",
    {"order_id": "o1", "user_id": "u1", "items": [{"sku": "BOOK-1", "quantity": 1}], "payment_method": "pm_card_visa"},
)
USER_REGISTERED = envelope("UserRegistered", "users", {"user_id": "u1", "email": "a@example.com", "name": "A"})


@pytest.mark.parametrize(
    ("service", "handler", "sample", "body"),
    [
        ("inventory", inventory_consumer.handler, "sqs-inventory-batch", ORDER_PLACED),
        ("orders", orders_consumer.handler, "sqs-orders-batch", USER_REGISTERED),
        ("payments", payments_consumer.handler, "sqs-payments-batch", ORDER_PLACED),
    ],
    ids=["inventory", "orders", "payments"],
)
def test_a_record_backed_off_for_an_unreachable_mongodb_counts_database_unavailable(
    mongodb_down: dict[str, ServiceRuntime],
    service: str,
    handler: Handler,
    sample: str,
    body: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    batch = sqs_batch(sample, [body])
    assert failed_ids(mongodb_down[service].invoke(handler, batch)) == [batch["Records"][0]["messageId"]]
    assert database_unavailable(capsys.readouterr().out) == {service: 1}


def test_a_notification_failing_for_an_unreachable_mongodb_counts_database_unavailable(
    mongodb_down: dict[str, ServiceRuntime],
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    with pytest.raises(Exception):  # noqa: B017 (whichever pymongo error: Lambda retries the event)
        mongodb_down["notifications"].invoke(notifications_app.handler, sample_event("sns-notifications"))
    assert database_unavailable(capsys.readouterr().out) == {"notifications": 1}


def test_a_request_refused_for_what_it_is_counts_no_outage(
    runtimes: dict[str, ServiceRuntime], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert runtimes["users"].http(users_api.handler, sample_event("api-users-get")).status == 404
    assert runtimes["inventory"].http(inventory_api.handler, sample_event("api-inventory-get")).status == 404
    assert database_unavailable(capsys.readouterr().out) == {}


def test_an_order_found_placed_by_an_earlier_attempt_with_its_key_is_not_counted_again(
    runtimes: dict[str, ServiceRuntime],
    aws: AwsResources,
    mongo_client: MongoClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The key's record is gone (the first attempt ended before completing it): the retry finds
    the order stored and answers with it, and nothing new was placed."""
    ada = register_user(runtimes, aws)
    capsys.readouterr()
    first = place(runtimes["orders"], ada, key="metrics-key")
    assert orders_db(mongo_client, runtimes["orders"])["idempotency"].delete_many({}).deleted_count == 1
    retry = place(runtimes["orders"], ada, key="metrics-key")
    assert (retry.status, retry.body) == (201, first.body)

    assert business(capsys.readouterr().out) == {("orders", "OrdersPlaced"): 1}
