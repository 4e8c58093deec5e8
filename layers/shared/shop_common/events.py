"""The event envelope and every event of the contract (contract version 3; every event is at
event_version 1), as pydantic models.

Producers build events with :func:`new_event`; consumers parse with ``DomainEvent``
(a union discriminated by ``event_type``). An unknown type, an unknown version or a
payload that does not match its schema fails validation, so the record goes to its
dead-letter queue instead of being half-processed. Unknown extra fields are ignored
(tolerant reader), so producers may add fields without breaking consumers.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from shop_common.clock import utc_now

# The contract's bounds. Every amount the saga computes is at most a total, and the largest
# total is MAX_ITEMS * MAX_QUANTITY * MAX_UNIT_PRICE_CENTS = 50 * 1000 * 10^8 = 5 * 10^12 cents,
# far below BSON's int64 maximum (about 9.2 * 10^18): no total, amount or stored sum overflows.
MAX_ITEMS = 50
MAX_QUANTITY = 1000
MAX_UNIT_PRICE_CENTS = 100_000_000
MAX_TOTAL_CENTS = MAX_ITEMS * MAX_QUANTITY * MAX_UNIT_PRICE_CENTS
MAX_AVAILABLE = 1_000_000_000

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Quantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY)]
UnitPriceCents = Annotated[int, Field(strict=True, ge=0, le=MAX_UNIT_PRICE_CENTS)]
# An order's total, and any charge or refund of it.
TotalCents = Annotated[int, Field(strict=True, ge=0, le=MAX_TOTAL_CENTS)]
StockLevel = Annotated[int, Field(strict=True, ge=0, le=MAX_AVAILABLE)]
# A payment method id the provider issued to the client (e.g. Stripe's pm_...), never card data.
PaymentMethod = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_]+$")]
Currency = Annotated[str, Field(min_length=3, max_length=3, pattern=r"^[a-z]{3}$")]
Source = Literal["users", "orders", "inventory", "payments"]
CorrelationId = Annotated[str, Field(min_length=1, max_length=200)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class OrderLine(_Model):
    sku: Sku
    quantity: Quantity


class PricedLine(_Model):
    sku: Sku
    quantity: Quantity
    unit_price_cents: UnitPriceCents


class Shortage(_Model):
    sku: Sku
    requested: Quantity
    available: StockLevel


class UserRegisteredData(_Model):
    user_id: str = Field(min_length=1)
    email: str = Field(min_length=3)
    name: str = Field(min_length=1)


class OrderPlacedData(_Model):
    order_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    items: list[OrderLine] = Field(min_length=1, max_length=MAX_ITEMS)
    payment_method: PaymentMethod


class OrderCancelledData(_Model):
    order_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    items: list[OrderLine] = Field(min_length=1, max_length=MAX_ITEMS)


class InventoryReservedData(_Model):
    order_id: str = Field(min_length=1)
    lines: list[PricedLine] = Field(min_length=1, max_length=MAX_ITEMS)
    total_cents: TotalCents


class InventoryRejectedData(_Model):
    order_id: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    unavailable: list[Shortage]


class PaymentSucceededData(_Model):
    order_id: str = Field(min_length=1)
    payment_id: str = Field(min_length=1)
    amount_cents: TotalCents
    currency: Currency


class PaymentFailedData(_Model):
    order_id: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    decline_code: str | None  # the provider's decline code; null when the card was not declined as such


class PaymentRefundedData(_Model):
    order_id: str = Field(min_length=1)
    refund_id: str = Field(min_length=1)
    amount_cents: TotalCents
    currency: Currency


class OrderConfirmedData(_Model):
    order_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    total_cents: TotalCents


class OrderRejectedData(_Model):
    order_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class EventEnvelope(_Model):
    """Fields every event carries; subclasses pin ``event_type`` and type ``data``."""

    event_id: uuid.UUID
    event_version: Literal[1]
    occurred_at: AwareDatetime
    correlation_id: CorrelationId
    source: Source


class UserRegistered(EventEnvelope):
    event_type: Literal["UserRegistered"]
    data: UserRegisteredData


class OrderPlaced(EventEnvelope):
    event_type: Literal["OrderPlaced"]
    data: OrderPlacedData


class OrderCancelled(EventEnvelope):
    event_type: Literal["OrderCancelled"]
    data: OrderCancelledData


class InventoryReserved(EventEnvelope):
    event_type: Literal["InventoryReserved"]
    data: InventoryReservedData


class InventoryRejected(EventEnvelope):
    event_type: Literal["InventoryRejected"]
    data: InventoryRejectedData


class PaymentSucceeded(EventEnvelope):
    event_type: Literal["PaymentSucceeded"]
    data: PaymentSucceededData


class PaymentFailed(EventEnvelope):
    event_type: Literal["PaymentFailed"]
    data: PaymentFailedData


class PaymentRefunded(EventEnvelope):
    event_type: Literal["PaymentRefunded"]
    data: PaymentRefundedData


class OrderConfirmed(EventEnvelope):
    event_type: Literal["OrderConfirmed"]
    data: OrderConfirmedData


class OrderRejected(EventEnvelope):
    event_type: Literal["OrderRejected"]
    data: OrderRejectedData


DomainEvent = Annotated[
    UserRegistered
    | OrderPlaced
    | OrderCancelled
    | InventoryReserved
    | InventoryRejected
    | PaymentSucceeded
    | PaymentFailed
    | PaymentRefunded
    | OrderConfirmed
    | OrderRejected,
    Field(discriminator="event_type"),
]
domain_event_adapter: TypeAdapter[DomainEvent] = TypeAdapter(DomainEvent)

EVENT_SOURCES: dict[str, Source] = {
    "UserRegistered": "users",
    "OrderPlaced": "orders",
    "OrderCancelled": "orders",
    "OrderConfirmed": "orders",
    "OrderRejected": "orders",
    "InventoryReserved": "inventory",
    "InventoryRejected": "inventory",
    "PaymentSucceeded": "payments",
    "PaymentFailed": "payments",
    "PaymentRefunded": "payments",
}

EventT = TypeVar("EventT", bound=EventEnvelope)


def new_event(
    event_class: type[EventT], data: BaseModel, correlation_id: str, occurred_at: datetime | None = None
) -> EventT:
    """A fresh event of ``event_class`` carrying ``data``, stamped with id, time and source."""
    event_type = event_class.model_fields["event_type"].annotation.__args__[0]  # type: ignore[union-attr]
    return event_class.model_validate(
        {
            "event_id": uuid.uuid4(),
            "event_type": event_type,
            "event_version": 1,
            "occurred_at": occurred_at or utc_now(),
            "correlation_id": correlation_id,
            "source": EVENT_SOURCES[event_type],
            "data": data,
        }
    )


def parse_event(body: str | bytes) -> DomainEvent:
    """Parse and validate one event body; raises ``pydantic.ValidationError`` if it is not one."""
    return domain_event_adapter.validate_json(body)


class _CorrelatedBody(BaseModel):
    """The envelope's correlation id alone, read from a body that is not a valid event."""

    correlation_id: CorrelationId


def claimed_correlation_id(body: str | bytes) -> str | None:
    """The correlation id of a body that failed validation, if it is JSON carrying one: its log
    line belongs to that flow."""
    try:
        return _CorrelatedBody.model_validate_json(body).correlation_id
    except ValidationError:
        return None


def why_invalid(error: ValidationError) -> list[ErrorDetails]:
    """What is wrong with a body, for a log line: where and why, without the input (a body may
    carry a customer's email or name)."""
    return error.errors(include_url=False, include_context=False, include_input=False)
