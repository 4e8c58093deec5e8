"""Orders data access: the only module of the service that knows pymongo."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from orders.domain import HistoryEntry, Order, OrderStatus, PagePosition, PaymentStatus, Transition
from shop_common.events import OrderLine, OrderPlaced
from shop_common.idempotency_ttl import ensure_idempotency_indexes
from shop_common.outbox import PENDING_EVENTS, PendingEvent, ensure_outbox_index, push_events

# Incremented by every change of an order: the compare-and-set of each transition.
VERSION = "version"


class OrdersRepository:
    def __init__(self, database: Database) -> None:
        self.orders: Collection = database["orders"]
        self.known_users: Collection = database["known_users"]
        self.idempotency: Collection = database["idempotency"]

    def ensure_indexes(self) -> None:
        self.orders.create_index(
            [("user_id", 1), ("created_at", DESCENDING), ("_id", DESCENDING)], name="orders_by_user_newest_first"
        )
        # The deadline's query: pending orders, oldest first.
        self.orders.create_index([("status", 1), ("created_at", 1)], name="orders_by_status_oldest_first")
        ensure_outbox_index(self.orders)
        ensure_idempotency_indexes(self.idempotency)

    def outbox_collections(self) -> list[Collection]:
        return [self.orders]

    # --- the projection of users, filled from UserRegistered ---

    def remember_user(self, user_id: str, email: str) -> None:
        self.known_users.update_one({"_id": user_id}, {"$set": {"email": email}}, upsert=True)

    def is_known_user(self, user_id: str) -> bool:
        return self.known_users.find_one({"_id": user_id}, {"_id": 1}) is not None

    # --- orders ---

    def insert(self, order: Order, event: OrderPlaced) -> PendingEvent | None:
        """Store the order and its OrderPlaced event in one atomic insert; None if an order
        with this id exists already (placed by an earlier attempt with the same Idempotency-Key)."""
        pending = PendingEvent.of(event)
        try:
            self.orders.insert_one({**_to_document(order), PENDING_EVENTS: [pending.to_document()]})
        except DuplicateKeyError:
            return None
        return pending

    def get(self, order_id: str) -> Order | None:
        document = self.orders.find_one({"_id": order_id}, {PENDING_EVENTS: 0})
        return _to_order(document) if document else None

    def apply(self, transition: Transition) -> list[PendingEvent] | None:
        """Apply a transition atomically with its event (if any) if the order is still at the
        version it was decided on; None if anything changed it since (the caller re-reads and
        decides again)."""
        order = transition.order
        pending, push_pending = push_events([transition.event] if transition.event else [])
        result = self.orders.update_one(
            {"_id": order.order_id, VERSION: _stored_version(transition.from_version)},
            {
                "$set": {
                    "status": order.status.value,
                    "reason": order.reason,
                    "total_cents": order.total_cents,
                    "payment_status": _payment_status_value(order.payment_status),
                    "updated_at": order.updated_at,
                    VERSION: order.version,
                },
                "$push": {
                    "history": {"$each": [_history_document(entry) for entry in transition.new_history]},
                    **push_pending,
                },
            },
        )
        return pending if result.matched_count else None

    def pending_placed_before(self, placed_before: datetime, limit: int) -> list[str]:
        """Ids of orders still PENDING that were placed before ``placed_before``, oldest first."""
        documents = self.orders.find(
            {"status": OrderStatus.PENDING.value, "created_at": {"$lt": placed_before}},
            {"_id": 1},
            sort=[("created_at", 1)],
            limit=limit,
        )
        return [document["_id"] for document in documents]

    def position_of(self, user_id: str, order_id: str) -> PagePosition | None:
        """Where order ``order_id`` stands in ``user_id``'s list; None if the user has no such order."""
        document = self.orders.find_one({"_id": order_id, "user_id": user_id}, {"created_at": 1})
        return PagePosition(document["created_at"], order_id) if document else None

    def page_for_user(self, user_id: str, limit: int, after: PagePosition | None) -> list[Order]:
        """Up to ``limit`` orders of the user, newest first, strictly after ``after``."""
        query: dict[str, Any] = {"user_id": user_id}
        if after is not None:
            query["$or"] = [
                {"created_at": {"$lt": after.created_at}},
                {"created_at": after.created_at, "_id": {"$lt": after.order_id}},
            ]
        cursor = (
            self.orders.find(query, {PENDING_EVENTS: 0})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [_to_order(document) for document in cursor]


def _stored_version(version: int) -> Any:
    """The filter on ``version`` matching an order at ``version``. Orders stored before versions
    existed have no field: they are at version 0."""
    return version if version else {"$in": [0, None]}


def _payment_status_value(payment_status: PaymentStatus | None) -> str | None:
    return payment_status.value if payment_status else None


def _history_document(entry: HistoryEntry) -> dict[str, Any]:
    return {"status": entry.status.value, "at": entry.at, "reason": entry.reason}


def _to_document(order: Order) -> dict[str, Any]:
    return {
        "_id": order.order_id,
        "user_id": order.user_id,
        "items": [line.model_dump() for line in order.items],
        "payment_method": order.payment_method,
        "status": order.status.value,
        "reason": order.reason,
        "total_cents": order.total_cents,
        "payment_status": _payment_status_value(order.payment_status),
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "history": [_history_document(entry) for entry in order.history],
        "correlation_id": order.correlation_id,
        VERSION: order.version,
    }


def _to_order(document: dict[str, Any]) -> Order:
    return Order(
        order_id=document["_id"],
        user_id=document["user_id"],
        items=tuple(OrderLine(**line) for line in document["items"]),
        payment_method=document["payment_method"],
        status=OrderStatus(document["status"]),
        reason=document.get("reason"),
        total_cents=document.get("total_cents"),
        payment_status=PaymentStatus(document["payment_status"]) if document.get("payment_status") else None,
        created_at=document["created_at"],
        updated_at=document["updated_at"],
        history=tuple(
            HistoryEntry(OrderStatus(entry["status"]), entry["at"], entry.get("reason"))
            for entry in document.get("history", [])
        ),
        version=document.get(VERSION, 0),
        correlation_id=document.get("correlation_id"),
    )
