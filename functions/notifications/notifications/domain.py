"""Notification texts and the contact projection's shape. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from shop_common.events import OrderCancelled, OrderConfirmed, OrderRejected, UserRegistered

NotifiedEvent = UserRegistered | OrderConfirmed | OrderRejected | OrderCancelled


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


def money(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


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
        text = f"your order {event.data.order_id} is confirmed. Total: {money(event.data.total_cents)}."
    elif isinstance(event, OrderRejected):
        order = short_id(event.data.order_id)
        subject = f"We could not accept your order {order}"
        text = f"we could not accept your order {event.data.order_id}. {event.data.reason}"
    else:
        order = short_id(event.data.order_id)
        subject = f"Your order {order} is cancelled"
        text = f"your order {event.data.order_id} is cancelled. Nothing will be charged for it."
    return Email(to=contact.email, subject=subject, body=greeting + text[0].upper() + text[1:] + sign_off)
