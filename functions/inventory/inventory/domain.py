"""Inventory domain: product shapes and the all-or-nothing reservation decision. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from shop_common.errors import NotFound
from shop_common.events import (
    InventoryRejected,
    InventoryRejectedData,
    InventoryReserved,
    InventoryReservedData,
    OrderLine,
    PricedLine,
    Shortage,
    StockLevel,
    UnitPriceCents,
    new_event,
)

SKU_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class ProductNotFound(NotFound):
    def __init__(self, sku: str) -> None:
        super().__init__(f"No product has sku {sku!r}.")


class ProductUpdate(BaseModel):
    """Body of ``PUT /inventory/{sku}``: sets the catalogue entry and the stock on hand.

    Bounded so that every total priced from it fits in int64 (see shop_common.events)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    unit_price_cents: UnitPriceCents
    available: StockLevel


class ProductView(BaseModel):
    sku: str
    name: str
    unit_price_cents: int
    available: int
    reserved: int


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    unit_price_cents: int
    available: int
    reserved: int

    def view(self) -> ProductView:
        return ProductView(
            sku=self.sku,
            name=self.name,
            unit_price_cents=self.unit_price_cents,
            available=self.available,
            reserved=self.reserved,
        )


class ReservationStatus(StrEnum):
    RESERVED = "RESERVED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"  # released: the order was cancelled
    PAYMENT_FAILED = "PAYMENT_FAILED"  # released: the order's payment failed
    ORDER_REJECTED = "ORDER_REJECTED"  # released: the order was rejected (its deadline passed)


# An order's stock returns once, whichever release comes first (a cancel, a failed payment, a
# rejection): a reservation in one of these states has nothing left to return, nor has a rejected one.
RELEASED = frozenset({ReservationStatus.CANCELLED, ReservationStatus.PAYMENT_FAILED, ReservationStatus.ORDER_REJECTED})
NOTHING_HELD = RELEASED | {ReservationStatus.REJECTED}


def shortages(lines: Sequence[OrderLine], products: Mapping[str, Product]) -> list[Shortage]:
    """Every line the stock cannot cover (an unknown sku has nothing available)."""
    short = []
    for line in lines:
        available = products[line.sku].available if line.sku in products else 0
        if available < line.quantity:
            short.append(Shortage(sku=line.sku, requested=line.quantity, available=available))
    return short


def priced_lines(lines: Sequence[OrderLine], products: Mapping[str, Product]) -> list[PricedLine]:
    return [
        PricedLine(sku=line.sku, quantity=line.quantity, unit_price_cents=products[line.sku].unit_price_cents)
        for line in lines
    ]


def reserved_event(order_id: str, lines: list[PricedLine], correlation_id: str, now: datetime) -> InventoryReserved:
    total = sum(line.quantity * line.unit_price_cents for line in lines)
    data = InventoryReservedData(order_id=order_id, lines=lines, total_cents=total)
    return new_event(InventoryReserved, data, correlation_id, occurred_at=now)


def rejection_reason(short: Sequence[Shortage]) -> str:
    parts = [
        f"{item.sku} (requested {item.requested}, available {item.available})"
        if item.available
        else f"{item.sku} (requested {item.requested}, none available)"
        for item in short
    ]
    return "Not enough stock for " + ", ".join(parts) + "."


def rejected_event(order_id: str, short: list[Shortage], correlation_id: str, now: datetime) -> InventoryRejected:
    data = InventoryRejectedData(order_id=order_id, reason=rejection_reason(short), unavailable=short)
    return new_event(InventoryRejected, data, correlation_id, occurred_at=now)


@dataclass(frozen=True)
class ReservationDecision:
    """What to do with an order: reserve ``lines`` (status RESERVED) or reject it."""

    status: ReservationStatus
    lines: list[PricedLine]
    event: InventoryReserved | InventoryRejected


def decide(
    order_id: str, lines: Sequence[OrderLine], products: Mapping[str, Product], correlation_id: str, now: datetime
) -> ReservationDecision:
    """All or nothing: reserve every line if the stock covers them all, else reject."""
    short = shortages(lines, products)
    if short:
        return ReservationDecision(ReservationStatus.REJECTED, [], rejected_event(order_id, short, correlation_id, now))
    priced = priced_lines(lines, products)
    return ReservationDecision(
        ReservationStatus.RESERVED, priced, reserved_event(order_id, priced, correlation_id, now)
    )
