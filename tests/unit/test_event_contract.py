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
