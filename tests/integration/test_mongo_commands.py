"""MongoDB round trips per request and per saga message on the happy path, counted with pymongo
command monitoring.

Counted on a warm container (indexes already ensured), as almost every request runs. Knowing
the caller costs nothing: the identity comes with the event, and ownership is read with the
document the request reads anyway.
"""

from __future__ import annotations

import json
from collections import defaultdict

import boto3

from devstack.delivery import sns_event, sqs_record
from inventory import api as inventory_api
from shop_common.identity import Caller
from tests.conftest import AwsResources, LocalStripe
from tests.integration.test_orders_api import ITEMS, cancel, get_order, list_page, place, register_user
from tests.integration.test_saga import HANDLERS, Shop
from tests.support import GRACE, Response, ServiceRuntime, api_event, command_counter, customer
from users import api as users_api


def get_profile(users: ServiceRuntime, user_id: str, caller: Caller) -> Response:
    return users.http(users_api.handler, api_event("api-users-get", path_params={"user_id": user_id}, caller=caller))


def test_commands_per_request(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> None:
    users, orders = runtimes["users"], runtimes["orders"]
    ada = register_user(runtimes, aws)
    place(orders, ada)  # warms the orders container
    newcomer = customer("newcomer")

    with command_counter.recording() as create_user:
        assert users.http(users_api.handler, api_event("api-users-create", caller=newcomer)).status == 201
    with command_counter.recording() as get_own_profile:
        assert get_profile(users, newcomer.user_id, newcomer).status == 200
    with command_counter.recording() as get_others_profile:
        assert get_profile(users, newcomer.user_id, ada).status == 404
    with command_counter.recording() as place_plain:
        order = place(orders, ada).body
    with command_counter.recording() as place_keyed:
        assert place(orders, ada, key="count-me").status == 201
    with command_counter.recording() as get_own_order:
        assert get_order(orders, order["order_id"], ada).status == 200
    with command_counter.recording() as get_as_staff:
        assert get_order(orders, order["order_id"], GRACE).status == 200
    with command_counter.recording() as get_others_order:
        assert get_order(orders, order["order_id"], newcomer).status == 404
    with command_counter.recording() as list_orders:
        listed = list_page(orders, ada.user_id, limit="2")
    with command_counter.recording() as list_others:
        assert list_page(orders, ada.user_id, newcomer).status == 404
    with command_counter.recording() as cancel_order:
        assert cancel(orders, order["order_id"], ada).status == 200
    assert listed.body["next_cursor"] is not None

    assert [c.split(".")[1] for c in create_user] == ["insert", "update"]
    assert [c.split(".")[1] for c in get_own_profile] == ["find"]
    assert get_others_profile == []  # refused without a read
    assert [c.split(".")[1] for c in place_plain] == ["find", "insert", "update"]
    assert len(place_keyed) == 5
    assert [c.split(".")[1] for c in get_own_order] == ["find"]
    assert [c.split(".")[1] for c in get_as_staff] == ["find"]
    assert [c.split(".")[1] for c in get_others_order] == ["find"]
    assert [c.split(".")[1] for c in list_orders] == ["find"]
    assert list_others == []
    assert [c.split(".")[1] for c in cancel_order] == ["find", "update", "update"]


def settle_counting(shop: Shop) -> dict[str, list[list[str]]]:
    """Deliver every waiting message alone, until the saga rests: the commands of each delivery,
    by consumer and event type."""
    sqs = boto3.client("sqs")
    counted: dict[str, list[list[str]]] = defaultdict(list)
    delivered = True
    while delivered:
        delivered = False
        for consumer, handler in HANDLERS.items():
            queue_url = shop.aws.queue_urls[consumer]
            received = sqs.receive_message(QueueUrl=queue_url, MessageAttributeNames=["All"], AttributeNames=["All"])
            messages = received.get("Messages", [])
            for message in messages:
                body = json.loads(message["Body"])
                if consumer == "notifications":
                    event, event_type = sns_event(body), json.loads(body["Message"])["event_type"]
                else:
                    queue_arn = f"arn:aws:sqs:eu-west-1:123456789012:{queue_url.rsplit('/', 1)[-1]}"
                    event, event_type = {"Records": [sqs_record(message, queue_arn)]}, body["event_type"]
                with command_counter.recording() as commands:
                    shop.runtimes[consumer].invoke(handler, event)
                counted[f"{consumer} {event_type}"].append([command.split(".")[1] for command in commands])
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                delivered = True
    return counted


def test_commands_per_saga_message(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, localstripe: LocalStripe
) -> None:
    """On warm containers: a paid order cancelled after its charge, then one whose card is declined.
    The payments consumer's are not pinned here: that service is its own team's to tune."""
    shop = Shop(runtimes, aws, localstripe)
    for sku in ("BOOK-1", "PEN-7"):
        body = {"name": sku, "unit_price_cents": 100, "available": 100}
        stocked = api_event("api-inventory-put", body=body, path_params={"sku": sku}, caller=GRACE)
        assert runtimes["inventory"].http(inventory_api.handler, stocked).status == 200
    register_user(runtimes, aws)
    shop.settle()
    warm_up = shop.place(ITEMS, "pm_card_visa")
    shop.settle()
    assert shop.cancel(warm_up).status == 200
    shop.settle()

    paid = shop.place(ITEMS, "pm_card_visa")
    counted = settle_counting(shop)
    assert shop.cancel(paid).status == 200
    for message, commands in settle_counting(shop).items():
        counted[message] += commands
    shop.place(ITEMS, "pm_card_chargeCustomerFail")
    for message, commands in settle_counting(shop).items():
        counted[message] += commands

    release = ["find", "update", "update", "update", "commitTransaction"]  # a reservation of two lines
    email = ["find", "insert", "update"]  # the contact, the claim, SENT
    assert {message: commands for message, commands in counted.items() if not message.startswith("payments")} == {
        "inventory OrderPlaced": [["find", "find", "update", "update", "insert", "commitTransaction", "update"]] * 2,
        "orders InventoryReserved": [["find", "update"]] * 2,  # the total: no event
        "orders PaymentSucceeded": [["find", "update", "update"]],  # confirmed, OrderConfirmed published
        "notifications OrderConfirmed": [["update", *email]],  # the order's user remembered first
        "inventory OrderCancelled": [release],
        "notifications OrderCancelled": [["update", *email]],
        "orders PaymentRefunded": [["find", "update"]],
        "notifications PaymentRefunded": [["find", *email]],  # the order's user looked up
        "inventory PaymentFailed": [release],
        "orders PaymentFailed": [["find", "update", "update"]],
        "inventory OrderRejected": [["find", "commitTransaction"]],  # its stock returned already (PaymentFailed)
        "notifications OrderRejected": [["update", *email]],
    }
