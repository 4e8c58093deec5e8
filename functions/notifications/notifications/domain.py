"""Notification texts, and the shapes of the projections they need (contacts, order owners). Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from shop_common.events import OrderCancelled, OrderConfirmed, OrderRejected, PaymentRefunded, UserRegistered

# The order events name their user: they fill the order -> user projection that a refund needs.
OrderEvent = OrderConfirmed | OrderRejected | OrderCancelled
NotifiedEvent = UserRegistered | OrderEvent | PaymentRefunded


@dataclass(frozen=True)
class Contact:
    user_id: str
    email: str
    name: str


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    body: str


class ContactUnknown(Exception):
    """The user's UserRegistered has not arrived yet (SNS does not order messages): retry later."""


class OrderOwnerUnknown(Exception):
    """A PaymentRefunded names no user, and no event naming the order's user has arrived yet: retry later."""


# Currencies written with their symbol; any other is written with its ISO code after the amount.
CURRENCY_SYMBOLS = {"usd": "$"}


def money(cents: int, currency: str = "usd") -> str:
    amount = f"{cents // 100:,}.{cents % 100:02d}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{amount}" if symbol else f"{amount} {currency.upper()}"


def short_id(order_id: str) -> str:
    return order_id.split("-", maxsplit=1)[0][:8]


def compose(event: NotifiedEvent, contact: Contact) -> Email:
    """The email this event owes its user."""
    greeting = f"Hello {contact.name},\n\n"
    sign_off = "\n\nThank you for shopping with us."
    if isinstance(event, UserRegistered):
        subject = "Welcome to the shop"
        text = "your account is ready. You can place your first order whenever you like."
    elif isinstance(event, OrderConfirmed):
        order = short_id(event.data.order_id)
        subject = f"Your order {order} is confirmed"
        # OrderConfirmed carries no currency: its total is written in the default one, as charged
        # unless the template's Currency parameter was changed.
        text = f"your order {event.data.order_id} is confirmed. We charged {money(event.data.total_cents)} for it."
    elif isinstance(event, OrderRejected):
        order = short_id(event.data.order_id)
        subject = f"We could not accept your order {order}"
        text = f"we could not accept your order {event.data.order_id}. {event.data.reason}"
    elif isinstance(event, OrderCancelled):
        order = short_id(event.data.order_id)
        subject = f"Your order {order} is cancelled"
        text = f"your order {event.data.order_id} is cancelled. If it was charged, we refund it in full."
    else:
        order = short_id(event.data.order_id)
        subject = f"Your order {order} is refunded"
        amount = money(event.data.amount_cents, event.data.currency)
        text = f"we refunded {amount} for your cancelled order {event.data.order_id}."
    return Email(to=contact.email, subject=subject, body=greeting + text[0].upper() + text[1:] + sign_off)
