"""Which payment method `make smoke` orders with: none in prod unless given (a live key charges real cards)."""

from __future__ import annotations

from tools.smoke import DEFAULT_PAYMENT_METHOD, payment_method_for


def test_dev_and_the_local_stack_order_with_stripes_test_card_by_default() -> None:
    assert payment_method_for("dev", given=None, no_order=False) == DEFAULT_PAYMENT_METHOD == "pm_card_visa"
    assert payment_method_for("local", given=None, no_order=False) == "pm_card_visa"


def test_prod_orders_only_with_a_payment_method_given() -> None:
    assert payment_method_for("prod", given=None, no_order=False) is None
    assert payment_method_for("prod", given="pm_1Real", no_order=False) == "pm_1Real"


def test_no_order_wins_over_a_payment_method() -> None:
    assert payment_method_for("dev", given="pm_card_visa", no_order=True) is None
