"""Every function path measured: its handler, its service and a fresh event for each call."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from bench.environment import ORDER_ID, ROOT, USER_EMAIL, USER_ID, BenchEnvironment

EVENTS = ROOT / "events"


@cache
def _sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return loaded


def _claims(user_id: str, email: str) -> dict[str, str]:
    """What API Gateway's Cognito authorizer passes on for a customer's ID token (every value a string)."""
    return {"sub": user_id, "email": email, "email_verified": "true", "token_use": "id"}


def _api(
    name: str,
    body: Any = None,
    path_params: dict[str, str] | None = None,
    path: str | None = None,
    claims: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A sample API event; made by ``claims`` (the seeded user's when None; the sample's own, a
    staff member's, for PUT /inventory)."""
    event = copy.deepcopy(_sample(name))
    if claims is None and not name.startswith("api-inventory-put"):
        claims = _claims(USER_ID, USER_EMAIL)
    if claims is not None:
        event["requestContext"]["authorizer"] = {"claims": claims}
    if body is not None:
        event["body"] = json.dumps(body)
    if path_params is not None:
        event["pathParameters"] = path_params
        event["path"] = path
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    event["headers"].pop("Idempotency-Key", None)
    event["multiValueHeaders"].pop("Idempotency-Key", None)
    return event


def _envelope(event_type: str, source: str, data: dict[str, Any]) -> str:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "event_version": 1,
            "occurred_at": "2026-11-23T05:00:00.000Z",
            "correlation_id": "bench",
            "source": source,
            "data": data,
        }
    )


def _sqs(sample: str, body: str) -> dict[str, Any]:
    event = copy.deepcopy(_sample(sample))
    record = event["Records"][0]
    record["messageId"], record["body"] = str(uuid.uuid4()), body
    return {"Records": [record]}


def _sns(message: str) -> dict[str, Any]:
    event = copy.deepcopy(_sample("sns-notifications"))
    event["Records"][0]["Sns"]["Message"] = message
    return event


@dataclass(frozen=True)
class FunctionPath:
    name: str
    service: str
    handler: str
    read_only: bool  # a GET or a consumer that publishes nothing
    make_event: Callable[[BenchEnvironment], dict[str, Any]]
    cold: bool = True  # measured at cold start too (not: paths whose first call needs localstripe)
    timeout: float = 10.0  # the function's Timeout in template.yaml

    @property
    def code_uri(self) -> Path:
        return ROOT / "functions" / self.service


def _placed() -> str:
    items = [{"sku": "BOOK-1", "quantity": 1}]
    return _envelope(
        "OrderPlaced",
        "orders",
        {"order_id": str(uuid.uuid4()), "user_id": USER_ID, "items": items, "payment_method": "pm_card_visa"},
    )


def _pending_order(env: BenchEnvironment, total_cents: int | None) -> str:
    """A PENDING order of the seeded user stored just now; its id."""
    order_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    client: MongoClient[dict[str, Any]] = MongoClient(env.mongodb_uri)
    with client:
        client[f"{env.prefix}_orders"]["orders"].insert_one(
            {"_id": order_id, "user_id": USER_ID, "items": [{"sku": "BOOK-1", "quantity": 1}], "status": "PENDING",
             "payment_method": "pm_card_visa",
             "reason": None, "total_cents": total_cents, "created_at": now, "updated_at": now,
             "history": [{"status": "PENDING", "at": now, "reason": None}], "pending_events": []}
        )  # fmt: skip
    return order_id


def _reserved(env: BenchEnvironment) -> dict[str, Any]:
    """An InventoryReserved for a PENDING order stored just now (it records the total only)."""
    order_id = _pending_order(env, None)
    lines = [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 250}]
    body = _envelope("InventoryReserved", "inventory", {"order_id": order_id, "lines": lines, "total_cents": 250})
    return _sqs("sqs-orders-batch", body)


def _paid(env: BenchEnvironment) -> dict[str, Any]:
    """A PaymentSucceeded for a reserved PENDING order stored just now (each call confirms a new one)."""
    order_id = _pending_order(env, 250)
    data = {"order_id": order_id, "payment_id": f"pi_{uuid.uuid4().hex[:24]}", "amount_cents": 250, "currency": "usd"}
    return _sqs("sqs-orders-batch", _envelope("PaymentSucceeded", "payments", data))


def _payment_placed(_: BenchEnvironment) -> dict[str, Any]:
    """An OrderPlaced for the payments consumer: it records the payment, awaiting the reservation."""
    return _sqs("sqs-payments-batch", _placed())


def _payment_reserved(env: BenchEnvironment) -> dict[str, Any]:
    """An InventoryReserved for a payment awaiting it, stored just now: each call charges a new
    order on localstripe (a PaymentIntent created and confirmed) and publishes PaymentSucceeded."""
    order_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    client: MongoClient[dict[str, Any]] = MongoClient(env.mongodb_uri)
    with client:
        client[f"{env.prefix}_payments"]["payments"].insert_one(
            {"_id": order_id, "status": "AWAITING_RESERVATION", "user_id": USER_ID, "payment_method": "pm_card_visa",
             "amount_cents": None, "currency": None, "cancel_requested": False, "intent_id": None, "refund_id": None,
             "failure_reason": None, "decline_code": None, "lease": None,
             "history": [{"status": "AWAITING_RESERVATION", "at": now, "reason": None}],
             "created_at": now, "updated_at": now, "version": 1, "pending_events": []}
        )  # fmt: skip
    lines = [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 250}]
    body = _envelope("InventoryReserved", "inventory", {"order_id": order_id, "lines": lines, "total_cents": 250})
    return _sqs("sqs-payments-batch", body)


def _new_customer(_: BenchEnvironment) -> dict[str, Any]:
    """POST /users by a customer signed up just now: a fresh sub and email; the body names them only."""
    user_id = str(uuid.uuid4())
    return _api("api-users-create", {"name": "B"}, claims=_claims(user_id, f"u{user_id[:12]}@example.com"))


PATHS = [
    FunctionPath("GET /users/{id}", "users", "users.api.handler", True,
                 lambda _: _api("api-users-get", path_params={"user_id": USER_ID}, path=f"/users/{USER_ID}")),
    FunctionPath("POST /users", "users", "users.api.handler", False, _new_customer),
    FunctionPath("GET /orders/{id}", "orders", "orders.api.handler", True,
                 lambda _: _api("api-orders-get", path_params={"order_id": ORDER_ID}, path=f"/orders/{ORDER_ID}")),
    FunctionPath("GET /users/{id}/orders", "orders", "orders.api.handler", True,
                 lambda _: _api("api-orders-list", path_params={"user_id": USER_ID}, path=f"/users/{USER_ID}/orders")),
    FunctionPath("POST /orders", "orders", "orders.api.handler", False,  # no Idempotency-Key
                 lambda _: _api("api-orders-create", {"items": [{"sku": "PEN-7", "quantity": 1}],
                                                     "payment_method": "pm_card_visa"})),
    FunctionPath("orders consumer (UserRegistered)", "orders", "orders.consumer.handler", True,
                 lambda _: _sqs("sqs-orders-batch", _envelope("UserRegistered", "users",
                              {"user_id": str(uuid.uuid4()), "email": "x@example.com", "name": "X"}))),
    FunctionPath("orders consumer (InventoryReserved)", "orders", "orders.consumer.handler", True, _reserved),
    FunctionPath("orders consumer (PaymentSucceeded)", "orders", "orders.consumer.handler", False, _paid),
    FunctionPath("GET /inventory/{sku}", "inventory", "inventory.api.handler", True,
                 lambda _: _api("api-inventory-get", path_params={"sku": "BOOK-1"}, path="/inventory/BOOK-1")),
    FunctionPath("PUT /inventory/{sku}", "inventory", "inventory.api.handler", False,
                 lambda _: _api("api-inventory-put", {"name": "Pen", "unit_price_cents": 199, "available": 10_000_000},
                              path_params={"sku": "PEN-7"}, path="/inventory/PEN-7")),
    FunctionPath("inventory consumer (OrderPlaced)", "inventory", "inventory.consumer.handler", False,
                 lambda _: _sqs("sqs-inventory-batch", _placed())),
    FunctionPath("payments consumer (OrderPlaced)", "payments", "payments.consumer.handler", True, _payment_placed,
                 timeout=60.0),
    FunctionPath("payments consumer (InventoryReserved, charge)", "payments", "payments.consumer.handler", False,
                 _payment_reserved, cold=False, timeout=60.0),
    FunctionPath("notifications (OrderConfirmed)", "notifications", "notifications.app.handler", False,
                 lambda _: _sns(_envelope("OrderConfirmed", "orders",
                              {"order_id": str(uuid.uuid4()), "user_id": USER_ID, "total_cents": 250}))),
    FunctionPath("orders outbox relay", "orders", "orders.relay.handler", True,
                 lambda _: copy.deepcopy(_sample("schedule-every-minute"))),
]  # fmt: skip

BASELINE = FunctionPath(
    "baseline (naive eager module)", "users", "bench.baseline_handler.handler", True,
    lambda _: _api("api-users-get", path_params={"user_id": USER_ID}, path=f"/users/{USER_ID}"),
)  # fmt: skip
