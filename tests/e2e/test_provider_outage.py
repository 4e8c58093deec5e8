"""Every saga ends: the payment provider down for longer than five visibility timeouts, then back.

The stack (``--fast``: 2 s visibility timeouts, a 30 s order deadline, schedules every 5 s) charges
through a proxy of the test's own in front of a localstripe of the test's own (``STRIPE_API_BASE``),
which the test switches off and on. Without anyone redriving anything, every order ends: a
cancelled paid order is refunded once the provider is back, an order the provider never charged is
rejected at its deadline and its stock returned, and no dead-letter queue holds anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.mongod import free_port
from devstack.stripe_server import API_KEY, StripeServer
from tests.conftest import LocalStripe
from tests.e2e.running_stack import RunningStack, eventually, running_stack
from tests.integration.test_payments import Stripe
from tests.stripe_proxy import StripeProxy

pytestmark = pytest.mark.e2e

VISIBILITY_TIMEOUT = 2  # --fast
SKU, STOCK, PRICE = "OUTAGE-1", 100, 1250
DEADLINE_REASON = "The order could not be completed in time."


@pytest.fixture(scope="module")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = StripeServer(free_port())
    yield server.start(tmp_path_factory.mktemp("localstripe") / "localstripe.log")
    server.stop()


@pytest.fixture(scope="module")
def provider(localstripe: str) -> Iterator[StripeProxy]:
    proxy = StripeProxy(localstripe)
    threading.Thread(target=proxy.serve_forever, name="stripe-proxy", daemon=True).start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, provider: StripeProxy) -> Iterator[RunningStack]:
    environment = {"STRIPE_API_BASE": provider.url, "STRIPE_API_KEY": API_KEY}
    with running_stack(Path(tmp_path_factory.mktemp("stack")), environment) as started:
        yield started


def order_of(customer: Any, order_id: str) -> dict[str, Any]:
    status, order = customer.call("GET", f"/orders/{order_id}")
    assert status == 200, order
    return dict(order)


def test_a_provider_outage_longer_than_five_visibility_timeouts_strands_no_order(
    stack: RunningStack, provider: StripeProxy, localstripe: str
) -> None:
    # Given a shop with stock, a registered customer and a confirmed order
    assert stack.description["stripe_api_base"] == provider.url
    staff, customer = stack.sign_in(staff=True), stack.sign_in()
    assert (
        staff.call("PUT", f"/inventory/{SKU}", {"name": SKU, "unit_price_cents": PRICE, "available": STOCK})[0] == 200
    )
    assert customer.call("POST", "/users", {"name": "Outage"})[0] == 201
    order = {"items": [{"sku": SKU, "quantity": 2}], "payment_method": "pm_card_visa"}
    paid = eventually(
        "the orders service to learn of the user",
        lambda: (answer := customer.call("POST", "/orders", order))[0] == 201 and answer,
    )
    paid_id = paid[1]["order_id"]
    eventually("the first order confirmed", lambda: order_of(customer, paid_id)["status"] == "CONFIRMED")

    # When the provider goes down: the paid order is cancelled, another is placed (never charged)
    provider.go_down()
    down_at = time.monotonic()
    assert customer.call("POST", f"/orders/{paid_id}/cancel")[0] == 200
    status, stuck = customer.call("POST", "/orders", {**order, "items": [{"sku": SKU, "quantity": 3}]})
    assert status == 201
    stuck_id = stuck["order_id"]
    # ... and stays down past the deadline, far longer than five visibility timeouts
    late = eventually(
        "the stuck order rejected at its deadline",
        lambda: (found := order_of(customer, stuck_id))["status"] == "REJECTED" and found,
        timeout=60,
    )
    assert late["reason"] == DEADLINE_REASON
    assert time.monotonic() - down_at > 5 * VISIBILITY_TIMEOUT
    assert order_of(customer, paid_id)["payment_status"] == "succeeded"  # the refund waits on the provider
    assert provider.count(("POST", r"^/v1/refunds$")) == 0
    refused_while_down = len(provider.received)

    # Then, once it is back, everything ends by itself: no redrive, nothing dead-lettered
    provider.come_back()
    refunded = eventually(
        "the cancelled order refunded",
        lambda: (found := order_of(customer, paid_id))["payment_status"] == "refunded" and found,
        timeout=60,
    )
    assert refunded["status"] == "CANCELLED"
    status, after = customer.call("POST", "/orders", order)
    assert status == 201
    eventually(
        "an order placed after the outage confirmed",
        lambda: order_of(customer, after["order_id"])["status"] == "CONFIRMED",
    )

    assert refused_while_down > 0
    assert stack.dead_letter_depths() == dict.fromkeys(stack.description["dead_letter_queues"], 0)
    stripe = Stripe(LocalStripe(localstripe))  # asked directly, not through the proxy
    [charge] = stripe.charges(paid_id)
    [refund] = stripe.refunds(paid_id)
    assert refund.amount == charge.amount == 2 * PRICE
    assert stripe.charges(stuck_id) == []
    assert order_of(customer, stuck_id)["payment_status"] is None
    stock = stack.call("GET", f"/inventory/{SKU}")[1]
    assert (stock["available"], stock["reserved"]) == (STOCK - 2, 2)  # only the last order holds stock
