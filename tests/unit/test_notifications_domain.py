"""Notification texts (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

from notifications.domain import Contact, compose, money
from shop_common.events import (
    OrderCancelled,
    OrderCancelledData,
    OrderConfirmed,
    OrderConfirmedData,
    OrderLine,
    PaymentRefunded,
    PaymentRefundedData,
    UserRegistered,
    UserRegisteredData,
    new_event,
)

ADA = Contact("u1", "ada@example.com", "Ada")
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def test_money_formats_cents() -> None:
    assert [money(0), money(5), money(199), money(123456789)] == ["$0.00", "$0.05", "$1.99", "$1,234,567.89"]


def test_money_names_a_currency_without_a_symbol_by_its_code() -> None:
    assert [money(199, "usd"), money(123456789, "eur")] == ["$1.99", "1,234,567.89 EUR"]


def test_confirmation_names_the_order_and_the_amount_charged() -> None:
    data = OrderConfirmedData(order_id="9b8a7c6d-5e4f", user_id="u1", total_cents=5199)
    email = compose(new_event(OrderConfirmed, data, "c", NOW), ADA)
    assert email.to == "ada@example.com"
    assert email.subject == "Your order 9b8a7c6d is confirmed"
    assert email.body.startswith("Hello Ada,\n\nYour order 9b8a7c6d-5e4f is confirmed. We charged $51.99 for it.")


def test_cancellation_says_a_charge_is_refunded() -> None:
    data = OrderCancelledData(order_id="9b8a7c6d-5e4f", user_id="u1", items=[OrderLine(sku="A", quantity=1)])
    email = compose(new_event(OrderCancelled, data, "c", NOW), ADA)
    assert email.subject == "Your order 9b8a7c6d is cancelled"
    assert "If it was charged, we refund it in full." in email.body


def test_refund_states_the_amount_in_its_currency() -> None:
    data = PaymentRefundedData(order_id="9b8a7c6d-5e4f", refund_id="re_1", amount_cents=5199, currency="eur")
    email = compose(new_event(PaymentRefunded, data, "c", NOW), ADA)
    assert (email.to, email.subject) == ("ada@example.com", "Your order 9b8a7c6d is refunded")
    assert "We refunded 51.99 EUR for your cancelled order 9b8a7c6d-5e4f." in email.body


def test_welcome() -> None:
    data = UserRegisteredData(user_id="u1", email="ada@example.com", name="Ada")
    email = compose(new_event(UserRegistered, data, "c", NOW), ADA)
    assert email.subject == "Welcome to the shop"
    assert "Your account is ready" in email.body
