"""The largest order the contract allows goes through the whole saga: every total the saga can
compute fits in MongoDB's int64, so no consumer fails on it (see shop_common.events). Stripe
charges far less at once, so its payment fails without asking the provider, and the stock
comes back."""

from __future__ import annotations

from inventory import api as inventory_api
from payments.domain import too_large_reason
from shop_common.events import MAX_AVAILABLE, MAX_ITEMS, MAX_QUANTITY, MAX_TOTAL_CENTS, MAX_UNIT_PRICE_CENTS
from tests.conftest import AwsResources, LocalStripe
from tests.integration.test_saga import Shop, dead_letter_queue_is_empty
from tests.support import ServiceRuntime, api_event, received_events
from users import api as users_api

SKUS = [f"SKU-{index:02d}" for index in range(MAX_ITEMS)]


def stock_up(inventory: ServiceRuntime, sku: str) -> None:
    body = {"name": sku, "unit_price_cents": MAX_UNIT_PRICE_CENTS, "available": MAX_AVAILABLE}
    response = inventory.http(
        inventory_api.handler, api_event("api-inventory-put", body=body, path_params={"sku": sku})
    )
    assert (response.status, response.body["unit_price_cents"]) == (200, 100_000_000)


def test_the_largest_order_is_reserved_priced_and_refused_by_payments_and_its_stock_returned(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, localstripe: LocalStripe
) -> None:
    shop = Shop(runtimes, aws, localstripe)
    for sku in SKUS:
        stock_up(runtimes["inventory"], sku)
    assert runtimes["users"].http(users_api.handler, api_event("api-users-create")).status == 201
    shop.settle()

    items = [{"sku": sku, "quantity": MAX_QUANTITY} for sku in SKUS]
    order_id = shop.place(items, "pm_card_visa")
    shop.settle(("inventory",))
    assert shop.stock(SKUS[0]) == (1_000_000_000 - 1000, 1000)

    # Restocked to the maximum while the order holds 1000: the release when its payment fails
    # lifts the stock past what a PUT may set, and it is still counted and served exactly.
    stock_up(runtimes["inventory"], SKUS[0])
    shop.settle()

    assert MAX_TOTAL_CENTS == 5_000_000_000_000
    [reserved] = [
        event for event in received_events(aws.queue_urls["tap"]) if event["event_type"] == "InventoryReserved"
    ]
    assert reserved["data"]["total_cents"] == 5_000_000_000_000
    rejected = shop.order(order_id)
    assert (rejected["status"], rejected["total_cents"], rejected["payment_status"]) == (
        "REJECTED",
        5_000_000_000_000,
        "failed",
    )
    assert rejected["reason"] == f"The payment failed: {too_large_reason(5_000_000_000_000)}"
    assert shop.stripe.intents(order_id) == []
    assert shop.stock(SKUS[0]) == (1_000_000_000 + 1000, 0)
    assert shop.stock(SKUS[1]) == (1_000_000_000, 0)
    assert all(dead_letter_queue_is_empty(aws, name) for name in ("orders", "inventory", "payments"))
