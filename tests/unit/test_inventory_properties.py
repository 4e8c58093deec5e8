"""Properties of the inventory's reservation decision (inventory.domain.decide), for any order
and any stock the contract allows: all or nothing, the total is the sum of its lines and fits
in int64, and no decision takes more stock than there is."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from inventory.domain import Product, ReservationStatus, decide
from shop_common.events import (
    MAX_AVAILABLE,
    MAX_ITEMS,
    MAX_QUANTITY,
    MAX_TOTAL_CENTS,
    MAX_UNIT_PRICE_CENTS,
    InventoryRejected,
    InventoryReserved,
    OrderLine,
)

NOW = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
# A few skus, so that orders often ask for what is stocked and sometimes for what is not.
SKUS = [f"SKU-{index}" for index in range(MAX_ITEMS + 5)]


@st.composite
def orders_and_stock(draw: st.DrawFn) -> tuple[list[OrderLine], dict[str, Product]]:
    skus = draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=MAX_ITEMS, unique=True))
    lines = [OrderLine(sku=sku, quantity=draw(st.integers(1, MAX_QUANTITY))) for sku in skus]
    stocked = draw(st.lists(st.sampled_from(SKUS), unique=True))
    products = {
        sku: Product(
            sku=sku,
            name=sku,
            unit_price_cents=draw(st.integers(0, MAX_UNIT_PRICE_CENTS)),
            # mostly near the quantities asked for, so that both outcomes are common
            available=draw(st.integers(0, 2 * MAX_QUANTITY) | st.integers(0, MAX_AVAILABLE)),
            reserved=draw(st.integers(0, MAX_AVAILABLE)),
        )
        for sku in stocked
    }
    return lines, products


LARGEST_ORDER = (
    [OrderLine(sku=sku, quantity=MAX_QUANTITY) for sku in SKUS[:MAX_ITEMS]],
    {
        sku: Product(sku, sku, unit_price_cents=MAX_UNIT_PRICE_CENTS, available=MAX_AVAILABLE, reserved=0)
        for sku in SKUS[:MAX_ITEMS]
    },
)


@settings(max_examples=150, deadline=None)
@given(orders_and_stock())
@example(LARGEST_ORDER)
def test_decide_reserves_all_or_nothing_within_stock(order: tuple[list[OrderLine], dict[str, Product]]) -> None:
    lines, products = order
    decision = decide("o1", lines, products, "corr", NOW)

    covered = [line.sku in products and products[line.sku].available >= line.quantity for line in lines]
    if all(covered):
        assert decision.status is ReservationStatus.RESERVED
        assert isinstance(decision.event, InventoryReserved)
        assert [(line.sku, line.quantity) for line in decision.lines] == [(line.sku, line.quantity) for line in lines]
        for line in decision.lines:
            assert line.unit_price_cents == products[line.sku].unit_price_cents
            assert products[line.sku].available - line.quantity >= 0
        total = decision.event.data.total_cents
        assert total == sum(line.quantity * line.unit_price_cents for line in decision.lines)
        assert 0 <= total <= MAX_TOTAL_CENTS < 2**63
    else:
        assert decision.status is ReservationStatus.REJECTED
        assert decision.lines == []
        assert isinstance(decision.event, InventoryRejected)
        short = [line for line, is_covered in zip(lines, covered, strict=True) if not is_covered]
        assert [(item.sku, item.requested) for item in decision.event.data.unavailable] == [
            (line.sku, line.quantity) for line in short
        ]
        for item in decision.event.data.unavailable:
            assert 0 <= item.available < item.requested
            assert item.sku in decision.event.data.reason


def test_the_largest_order_totals_five_trillion_cents() -> None:
    decision = decide("o1", *LARGEST_ORDER, "corr", NOW)
    assert isinstance(decision.event, InventoryReserved)
    assert decision.event.data.total_cents == 5_000_000_000_000
