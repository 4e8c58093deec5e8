"""Notification texts (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

from notifications.domain import Contact, compose, money
from shop_common.events import OrderConfirmed, OrderConfirmedData, UserRegistered, UserRegisteredData, new_event

ADA = Contact("u1", "ada@example.com", "Ada")
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def test_money_formats_cents() -> None:
    assert [money(0), money(5), money(199), money(123456789)] == ["$0.00", "$0.05", "$1.99", "$1,234,567.89"]


def test_confirmation_names_the_order_and_total() -> None:
    data = OrderConfirmedData(order_id="9b8a7c6d-5e4f", user_id="u1", total_cents=5199)
    email = compose(new_event(OrderConfirmed, data, "c", NOW), ADA)
    assert email.to == "ada@example.com"
    assert email.subject == "Your order 9b8a7c6d is confirmed"
    assert email.body.startswith("Hello Ada,\n\nYour order 9b8a7c6d-5e4f is confirmed. Total: $51.99.")


def test_welcome() -> None:
    data = UserRegisteredData(user_id="u1", email="ada@example.com", name="Ada")
    email = compose(new_event(UserRegistered, data, "c", NOW), ADA)
    assert email.subject == "Welcome to the shop"
    assert "Your account is ready" in email.body
