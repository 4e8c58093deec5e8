"""Every event model matches the contract (../shared/contract.md), read from the contract itself."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shop_common import events

CONTRACT = Path(__file__).resolve().parents[3] / "shared" / "contract.md"


def contract_events() -> dict[str, list[str]]:
    """event_type -> top-level data field names, from the contract's events table."""
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \|$", CONTRACT.read_text(), flags=re.MULTILINE)
    return {
        name: [field.split(":")[0].strip() for field in re.sub(r"\[[^\]]*\]", "", spec).split(",")]
        for name, spec in rows
    }


def contract_envelope() -> list[str]:
    block = re.search(r'```\n(\{"event_id".*?\})\n```', CONTRACT.read_text(), flags=re.DOTALL)
    assert block is not None
    return re.findall(r'"(\w+)":', block.group(1))


ALL_EVENT_MODELS: list[type[events.EventEnvelope]] = [
    events.UserRegistered,
    events.OrderPlaced,
    events.OrderCancelled,
    events.InventoryReserved,
    events.InventoryRejected,
    events.PaymentSucceeded,
    events.PaymentFailed,
    events.PaymentRefunded,
    events.OrderConfirmed,
    events.OrderRejected,
]
EVENT_MODELS = {model.model_fields["event_type"].annotation.__args__[0]: model for model in ALL_EVENT_MODELS}  # type: ignore[union-attr]


def test_the_contract_lists_the_events_we_model() -> None:
    assert sorted(contract_events()) == sorted(EVENT_MODELS)


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_event_fields_match_the_contract(event_type: str) -> None:
    model = EVENT_MODELS[event_type]
    assert sorted(model.model_fields) == sorted(contract_envelope())
    data_model = model.model_fields["data"].annotation
    assert isinstance(data_model, type)
    assert sorted(data_model.model_fields) == sorted(contract_events()[event_type])


SAMPLE_DATA: dict[str, dict[str, Any]] = {
    "UserRegistered": {"user_id": "u1", "email": "a@example.com", "name": "A"},
    "OrderPlaced": {
        "order_id": "o1",
        "user_id": "u1",
        "items": [{"sku": "A", "quantity": 1}],
        "payment_method": "pm_card_visa",
    },
    "OrderCancelled": {"order_id": "o1", "user_id": "u1", "items": [{"sku": "A", "quantity": 1}]},
    "InventoryReserved": {
        "order_id": "o1",
        "lines": [{"sku": "A", "quantity": 1, "unit_price_cents": 5}],
        "total_cents": 5,
    },
    "InventoryRejected": {
        "order_id": "o1",
        "reason": "no A",
        "unavailable": [{"sku": "A", "requested": 1, "available": 0}],
    },
    "PaymentSucceeded": {"order_id": "o1", "payment_id": "pi_1", "amount_cents": 5, "currency": "usd"},
    "PaymentFailed": {"order_id": "o1", "reason": "Your card was declined.", "decline_code": "generic_decline"},
    "PaymentRefunded": {"order_id": "o1", "refund_id": "re_1", "amount_cents": 5, "currency": "usd"},
    "OrderConfirmed": {"order_id": "o1", "user_id": "u1", "total_cents": 5},
    "OrderRejected": {"order_id": "o1", "user_id": "u1", "reason": "no A"},
}


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_new_events_round_trip_with_their_source_and_version(event_type: str) -> None:
    model = EVENT_MODELS[event_type]
    data_model = model.model_fields["data"].annotation
    assert isinstance(data_model, type)
    event = events.new_event(model, data_model.model_validate(SAMPLE_DATA[event_type]), "corr-1")

    parsed = events.parse_event(event.model_dump_json())

    assert parsed == event
    assert (parsed.event_version, parsed.correlation_id) == (1, "corr-1")
    expected_source = next(
        source
        for prefix, source in (
            ("User", "users"),
            ("Inventory", "inventory"),
            ("Payment", "payments"),
            ("Order", "orders"),
        )
        if event_type.startswith(prefix)
    )
    assert parsed.source == expected_source


def envelope(**changes: Any) -> str:
    body = {
        "event_id": "6a1f0c52-7a3e-4d8b-9e2f-0a1b2c3d4e01",
        "event_type": "OrderConfirmed",
        "event_version": 1,
        "occurred_at": "2026-11-23T05:00:00.000Z",
        "correlation_id": "c1",
        "source": "orders",
        "data": SAMPLE_DATA["OrderConfirmed"],
    }
    body.update(changes)
    return json.dumps(body)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        envelope(event_type="OrderShipped"),
        envelope(event_version=2),
        envelope(data={"order_id": "o1"}),
        envelope(data={**SAMPLE_DATA["OrderConfirmed"], "total_cents": -1}),
        envelope(occurred_at="yesterday"),
        envelope(occurred_at="2026-11-23T05:00:00"),  # no timezone
        envelope(source="billing"),
        envelope(
            event_type="PaymentSucceeded",
            source="payments",
            data={**SAMPLE_DATA["PaymentSucceeded"], "currency": "US$"},
        ),
    ],
)
def test_invalid_events_are_refused(body: str) -> None:
    with pytest.raises(ValidationError):
        events.parse_event(body)


def test_unknown_extra_fields_are_tolerated() -> None:
    assert (
        events.parse_event(envelope(data={**SAMPLE_DATA["OrderConfirmed"], "currency": "EUR"})).event_type
        == "OrderConfirmed"
    )


def test_the_largest_total_fits_in_mongodbs_int64() -> None:
    assert events.MAX_TOTAL_CENTS == events.MAX_ITEMS * events.MAX_QUANTITY * events.MAX_UNIT_PRICE_CENTS
    assert events.MAX_TOTAL_CENTS == 5_000_000_000_000 < 2**63 - 1


def data_of(event_type: str, **changes: Any) -> dict[str, Any]:
    return {**SAMPLE_DATA[event_type], **changes}


def priced_lines(count: int, quantity: int = 1, unit_price_cents: int = 1) -> list[dict[str, Any]]:
    return [{"sku": f"S{index}", "quantity": quantity, "unit_price_cents": unit_price_cents} for index in range(count)]


LARGEST_RESERVATION = data_of(
    "InventoryReserved", lines=priced_lines(50, 1000, 100_000_000), total_cents=5_000_000_000_000
)
MONEY_AT_THE_BOUNDS: list[tuple[str, dict[str, Any]]] = [
    ("InventoryReserved", LARGEST_RESERVATION),
    ("InventoryRejected", data_of("InventoryRejected", unavailable=[{"sku": "A", "requested": 1, "available": 0}])),
    ("PaymentSucceeded", data_of("PaymentSucceeded", amount_cents=5_000_000_000_000)),
    ("PaymentRefunded", data_of("PaymentRefunded", amount_cents=5_000_000_000_000)),
    ("OrderConfirmed", data_of("OrderConfirmed", total_cents=5_000_000_000_000)),
]
MONEY_OUT_OF_BOUNDS: list[tuple[str, dict[str, Any]]] = [
    ("InventoryReserved", data_of("InventoryReserved", total_cents=5_000_000_000_001)),
    ("InventoryReserved", data_of("InventoryReserved", total_cents=2**63)),
    ("InventoryReserved", data_of("InventoryReserved", lines=priced_lines(1, 1, 100_000_001))),
    ("InventoryReserved", data_of("InventoryReserved", lines=priced_lines(51))),
    (
        "InventoryRejected",
        data_of("InventoryRejected", unavailable=[{"sku": "A", "requested": 1, "available": 1_000_000_001}]),
    ),
    ("PaymentSucceeded", data_of("PaymentSucceeded", amount_cents=5_000_000_000_001)),
    ("PaymentRefunded", data_of("PaymentRefunded", amount_cents=5_000_000_000_001)),
    ("OrderConfirmed", data_of("OrderConfirmed", total_cents=5_000_000_000_001)),
    ("OrderConfirmed", data_of("OrderConfirmed", total_cents=1.0)),
]


def event_body(event_type: str, data: dict[str, Any]) -> str:
    source = events.EVENT_SOURCES[event_type]
    return envelope(event_type=event_type, source=source, data=data)


@pytest.mark.parametrize(("event_type", "data"), MONEY_AT_THE_BOUNDS)
def test_money_and_stock_at_the_contracts_bounds_are_accepted(event_type: str, data: dict[str, Any]) -> None:
    assert events.parse_event(event_body(event_type, data)).event_type == event_type


@pytest.mark.parametrize(("event_type", "data"), MONEY_OUT_OF_BOUNDS)
def test_money_and_stock_beyond_the_contracts_bounds_are_refused(event_type: str, data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        events.parse_event(event_body(event_type, data))
