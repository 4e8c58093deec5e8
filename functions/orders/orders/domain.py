"""Orders domain: request shapes, the order lifecycle and pagination cursors. Pure, no I/O."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.json_schema import SkipJsonSchema

from shop_common.clock import iso
from shop_common.errors import Conflict, Forbidden, NotFound, Unprocessable
from shop_common.events import (
    InventoryRejectedData,
    InventoryReservedData,
    OrderCancelled,
    OrderCancelledData,
    OrderConfirmed,
    OrderConfirmedData,
    OrderLine,
    OrderPlaced,
    OrderPlacedData,
    OrderRejected,
    OrderRejectedData,
    PaymentFailedData,
    PaymentMethod,
    PaymentSucceededData,
    Quantity,
    Sku,
    new_event,
)
from shop_common.identity import USER_ID_PATTERN, Caller

UserId = Annotated[str, Field(pattern=USER_ID_PATTERN)]
# Order ids are UUIDs (random, or derived from an Idempotency-Key); ids of this shape are safe in paths.
ORDER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


class UnknownUser(Unprocessable):
    code = "unknown_user"

    def __init__(self, user_id: str) -> None:
        super().__init__(f"No user has id {user_id!r} (a user just registered may take a moment to be known).")


class OrderNotFound(NotFound):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"No order has id {order_id!r}.")


class UserOrdersNotFound(NotFound):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"No user has id {user_id!r}.")


class NotForYourself(Forbidden):
    def __init__(self) -> None:
        super().__init__("You may place orders for yourself only: leave out user_id or send your own.")


class NotCancellable(Conflict):
    code = "not_cancellable"


class InvalidCursor(Unprocessable):
    code = "validation_error"

    def __init__(self) -> None:
        super().__init__("The cursor is not one this API returned.")


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"


class IdempotencyKeyInFlight(Conflict):
    code = "idempotency_key_in_flight"


class NewOrderItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: Quantity


def _without_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class NewOrder(BaseModel):
    """Body of ``POST /orders``. The order is the caller's: ``user_id``, if sent, must be theirs."""

    model_config = ConfigDict(extra="forbid")

    # Optional but never null: left out, it is the caller's. None is only the default: kept out of the
    # document (a null default would contradict its type there) and of a dump (which validates again).
    user_id: UserId | SkipJsonSchema[None] = Field(
        default=None, exclude_if=lambda user_id: user_id is None, json_schema_extra=_without_default
    )
    items: list[NewOrderItem] = Field(min_length=1, max_length=50)
    payment_method: PaymentMethod

    @field_validator("user_id", mode="before")
    @classmethod
    def user_id_is_not_null(cls, user_id: Any) -> Any:
        if user_id is None:  # a default is not validated: only a null sent by the client gets here
            raise ValueError("user_id may be left out, but not null")
        return user_id

    @field_validator("items")
    @classmethod
    def skus_are_unique(cls, items: list[NewOrderItem]) -> list[NewOrderItem]:
        skus = [item.sku for item in items]
        duplicates = sorted({sku for sku in skus if skus.count(sku) > 1})
        if duplicates:
            raise ValueError(f"each sku may appear once; repeated: {', '.join(duplicates)}")
        return items


class PaymentStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUNDED = "refunded"


class StatusChange(BaseModel):
    status: OrderStatus
    at: str
    reason: str | None = None


class OrderView(BaseModel):
    """An order as the API shows it. ``history`` extends the contract: every status change."""

    order_id: str
    user_id: str
    items: list[NewOrderItem]
    status: OrderStatus
    reason: str | None
    total_cents: int | None
    payment_status: PaymentStatus | None
    created_at: str
    updated_at: str
    history: list[StatusChange]


class OrderPage(BaseModel):
    orders: list[OrderView]
    next_cursor: str | None


# Fixed forever: changing it would change the order id every key derives.
ORDER_ID_NAMESPACE = uuid.UUID("5b1f3e0a-7c64-4d2e-9a8b-2f4c6d8e0a13")


@dataclass(frozen=True)
class IdempotencyKey:
    """A client's ``Idempotency-Key`` within its scope, the caller's user id: the same key from
    two callers names two different requests."""

    scope: str
    key: str

    @classmethod
    def of(cls, caller: Caller, key: str) -> IdempotencyKey:
        return cls(scope=caller.user_id, key=key)

    def order_id(self) -> str:
        """The id of the order placed under this key: every attempt with the key derives the same
        id, so a retry finds the order an earlier attempt stored, however that attempt ended."""
        return str(uuid.uuid5(ORDER_ID_NAMESPACE, json.dumps([self.scope, self.key])))


@dataclass(frozen=True)
class HistoryEntry:
    status: OrderStatus
    at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class Order:
    order_id: str
    user_id: str
    items: tuple[OrderLine, ...]
    payment_method: str
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    reason: str | None = None
    total_cents: int | None = None
    payment_status: PaymentStatus | None = None
    history: tuple[HistoryEntry, ...] = field(default_factory=tuple)
    version: int = 0  # counts the order's changes; a change is stored only on the version it was decided on
    correlation_id: str | None = None  # of the request that placed it: the flow its events belong to

    def matches(self, user_id: str, request: NewOrder) -> bool:
        """Whether this order is what ``user_id`` asks for with ``request`` (items in order, payment method)."""
        return (self.user_id, self.items, self.payment_method) == (user_id, _lines(request), request.payment_method)

    def view(self) -> OrderView:
        return OrderView(
            order_id=self.order_id,
            user_id=self.user_id,
            items=[NewOrderItem(sku=line.sku, quantity=line.quantity) for line in self.items],
            status=self.status,
            reason=self.reason,
            total_cents=self.total_cents,
            payment_status=self.payment_status,
            created_at=iso(self.created_at),
            updated_at=iso(self.updated_at),
            history=[
                StatusChange(status=entry.status, at=iso(entry.at), reason=entry.reason) for entry in self.history
            ],
        )


OrderEvent = OrderConfirmed | OrderRejected | OrderCancelled


@dataclass(frozen=True)
class Transition:
    """A change decided on the order ``before``: it applies only if the stored order is still at
    ``before``'s version (compare-and-set), so no change decided on a stale read lands."""

    before: Order
    order: Order  # the order as it will be after the change
    event: OrderEvent | None = None  # None: a change no other service hears of (total, payment status)

    @property
    def from_version(self) -> int:
        return self.before.version

    @property
    def new_history(self) -> tuple[HistoryEntry, ...]:
        return self.order.history[len(self.before.history) :]


def _lines(request: NewOrder) -> tuple[OrderLine, ...]:
    return tuple(OrderLine(sku=item.sku, quantity=item.quantity) for item in request.items)


def placer_of(caller: Caller, request: NewOrder) -> str:
    """Whose order ``request`` places: the caller's, always. A ``user_id`` naming anyone else is
    refused, staff's included (staff read others' orders, they do not buy on their behalf)."""
    if request.user_id not in (None, caller.user_id):
        raise NotForYourself
    return caller.user_id


def place_order(
    user_id: str, request: NewOrder, order_id: str, correlation_id: str, now: datetime
) -> tuple[Order, OrderPlaced]:
    items = _lines(request)
    order = Order(
        order_id=order_id,
        user_id=user_id,
        items=items,
        payment_method=request.payment_method,
        status=OrderStatus.PENDING,
        created_at=now,
        updated_at=now,
        history=(HistoryEntry(OrderStatus.PENDING, now),),
        correlation_id=correlation_id,
    )
    data = OrderPlacedData(
        order_id=order.order_id, user_id=order.user_id, items=list(items), payment_method=order.payment_method
    )
    return order, new_event(OrderPlaced, data, correlation_id, occurred_at=now)


def replay(placed: Order, user_id: str, request: NewOrder) -> Order:
    """The order an earlier attempt with the same Idempotency-Key placed, for a retry of the
    same request; the key cannot stand for a different request."""
    if not placed.matches(user_id, request):
        raise IdempotencyKeyReused("This Idempotency-Key was used with a different request body.")
    return placed


def _changed(order: Order, now: datetime, **changes: Any) -> Order:
    return replace(order, updated_at=now, version=order.version + 1, **changes)


def _moved(order: Order, status: OrderStatus, now: datetime, **changes: Any) -> Order:
    entry = HistoryEntry(status, now, changes.get("reason"))
    return _changed(order, now, status=status, history=(*order.history, entry), **changes)


# payment_status only moves forward, whatever order the payment events arrive in: a refund may
# overtake its charge's PaymentSucceeded, and neither may then take "refunded" back.
PAYMENT_STATUS_MOVES: dict[PaymentStatus | None, frozenset[PaymentStatus]] = {
    None: frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.REFUNDED}),
    PaymentStatus.SUCCEEDED: frozenset({PaymentStatus.REFUNDED}),
}


def _moved_forward(current: PaymentStatus | None, reported: PaymentStatus) -> PaymentStatus | None:
    """The payment status after ``reported``: it, unless that would take ``current`` back."""
    return reported if reported in PAYMENT_STATUS_MOVES.get(current, frozenset()) else current


def _payment_recorded(order: Order, reported: PaymentStatus, now: datetime) -> Transition | None:
    """Only the payment's status changes; None if it stays as it is."""
    payment_status = _moved_forward(order.payment_status, reported)
    if payment_status is order.payment_status:
        return None
    return Transition(order, _changed(order, now, payment_status=payment_status))


def record_total(order: Order, reservation: InventoryReservedData, now: datetime) -> Transition | None:
    """InventoryReserved: the order's total is known; the order stays as it is (its payment
    decides). None when the total is known already (a duplicate, or the payment told it first)."""
    if order.total_cents is not None:
        return None
    return Transition(order, _changed(order, now, total_cents=reservation.total_cents))


def reject_for_stock(
    order: Order, rejection: InventoryRejectedData, correlation_id: str, now: datetime
) -> Transition | None:
    """InventoryRejected: PENDING -> REJECTED with inventory's reason; None when the order has moved on."""
    if order.status is not OrderStatus.PENDING:
        return None
    rejected = _moved(order, OrderStatus.REJECTED, now, reason=rejection.reason)
    data = OrderRejectedData(order_id=order.order_id, user_id=order.user_id, reason=rejection.reason)
    return Transition(order, rejected, new_event(OrderRejected, data, correlation_id, now))


def confirm(order: Order, payment: PaymentSucceededData, correlation_id: str, now: datetime) -> Transition | None:
    """PaymentSucceeded: PENDING -> CONFIRMED, paid. The charge is the reservation's total, so
    when it overtakes InventoryReserved its amount is the order's total. An order cancelled
    while it was charged only records the payment (payments refunds it on the OrderCancelled)."""
    if order.status is not OrderStatus.PENDING:
        return _payment_recorded(order, PaymentStatus.SUCCEEDED, now)
    total = payment.amount_cents if order.total_cents is None else order.total_cents
    payment_status = _moved_forward(order.payment_status, PaymentStatus.SUCCEEDED)
    confirmed = _moved(order, OrderStatus.CONFIRMED, now, total_cents=total, payment_status=payment_status)
    data = OrderConfirmedData(order_id=order.order_id, user_id=order.user_id, total_cents=total)
    return Transition(order, confirmed, new_event(OrderConfirmed, data, correlation_id, occurred_at=now))


def reject_for_payment(
    order: Order, failure: PaymentFailedData, correlation_id: str, now: datetime
) -> Transition | None:
    """PaymentFailed: PENDING -> REJECTED, saying why (inventory returns the stock on the same
    event). An order cancelled meanwhile only records the failed payment."""
    if order.status is not OrderStatus.PENDING:
        return _payment_recorded(order, PaymentStatus.FAILED, now)
    reason = f"The payment failed: {failure.reason}"
    payment_status = _moved_forward(order.payment_status, PaymentStatus.FAILED)
    rejected = _moved(order, OrderStatus.REJECTED, now, reason=reason, payment_status=payment_status)
    data = OrderRejectedData(order_id=order.order_id, user_id=order.user_id, reason=reason)
    return Transition(order, rejected, new_event(OrderRejected, data, correlation_id, now))


DEADLINE_REASON = "The order could not be completed in time."


def reject_overdue(order: Order, deadline: timedelta, now: datetime) -> Transition | None:
    """Still PENDING ``deadline`` after it was placed: something in the saga is broken or down for
    too long, and the customer should not wait for ever. REJECTED, announced under the order's own
    flow, so that inventory and payments give back whatever they hold for it. None if the order
    has moved on, or is not overdue."""
    if order.status is not OrderStatus.PENDING or now - order.created_at < deadline:
        return None
    rejected = _moved(order, OrderStatus.REJECTED, now, reason=DEADLINE_REASON)
    data = OrderRejectedData(order_id=order.order_id, user_id=order.user_id, reason=DEADLINE_REASON)
    correlation_id = order.correlation_id or order.order_id  # orders placed before it was stored
    return Transition(order, rejected, new_event(OrderRejected, data, correlation_id, now))


def record_refund(order: Order, now: datetime) -> Transition | None:
    """PaymentRefunded (the order was cancelled after its charge): the order stays CANCELLED, refunded."""
    return _payment_recorded(order, PaymentStatus.REFUNDED, now)


CANCELLABLE = frozenset({OrderStatus.PENDING, OrderStatus.CONFIRMED})


def cancel(order: Order, correlation_id: str, now: datetime) -> Transition | None:
    """PENDING or CONFIRMED -> CANCELLED; None if already cancelled (cancelling is idempotent)."""
    if order.status is OrderStatus.CANCELLED:
        return None
    if order.status not in CANCELLABLE:
        raise NotCancellable(f"Order {order.order_id} is {order.status.value} and cannot be cancelled.")
    cancelled = _moved(order, OrderStatus.CANCELLED, now)
    data = OrderCancelledData(order_id=order.order_id, user_id=order.user_id, items=list(order.items))
    return Transition(order, cancelled, new_event(OrderCancelled, data, correlation_id, now))


@dataclass(frozen=True)
class PagePosition:
    """Where a page ends: orders are listed by (created_at, order_id) descending, so a position
    stays valid however many orders are placed between two page requests."""

    created_at: datetime
    order_id: str


def encode_cursor(position: PagePosition) -> str:
    """The cursor of a page ending at ``position``: opaque to clients, not a secret."""
    raw = json.dumps({"t": iso(position.created_at), "id": position.order_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


class _CursorContent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    t: datetime
    id: str = Field(min_length=1, max_length=64)


def decode_cursor(cursor: str) -> PagePosition:
    """The position a cursor claims. Anyone can write a well-formed cursor, so the claim is
    only a question: ``check_cursor`` answers it from the stored order."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        content = _CursorContent.model_validate_json(raw)
    except (binascii.Error, ValueError, ValidationError):
        raise InvalidCursor from None
    if content.t.tzinfo is None:
        raise InvalidCursor
    return PagePosition(created_at=content.t, order_id=content.id)


def check_cursor(claimed: PagePosition, stored: PagePosition | None) -> PagePosition:
    """A cursor is one this API issued for the list only if it names an order of that list at
    exactly that order's position (``stored``: the position of ``claimed.order_id`` among the
    list's orders, None if the list has no such order)."""
    if stored is None or stored != claimed:
        raise InvalidCursor
    return stored
