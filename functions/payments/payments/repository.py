"""Payments data access: the only module of the service that knows pymongo.

One document per order (``_id`` = order id) holds the payment's state, its history and its
outbox. A transition inserts the document (the first event seen for the order) or replaces its
state if it is still at the version the transition was decided on: one single-document write,
so the state and its events are atomic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from payments.domain import UNFINISHED, HistoryEntry, Lease, Payment, PaymentStatus, Transition
from shop_common.outbox import PENDING_EVENTS, PendingEvent, ensure_outbox_index, push_events

VERSION = "version"


class PaymentsRepository:
    def __init__(self, database: Database) -> None:
        self.payments: Collection = database["payments"]

    def ensure_indexes(self) -> None:
        ensure_outbox_index(self.payments)
        # The sweep's query: unfinished payments whose lease (if any) has ended.
        self.payments.create_index([("status", ASCENDING), ("lease.until", ASCENDING)], name="unfinished")

    def outbox_collections(self) -> list[Collection]:
        return [self.payments]

    def get(self, order_id: str) -> Payment | None:
        document = self.payments.find_one({"_id": order_id}, {PENDING_EVENTS: 0})
        return _to_payment(document) if document else None

    def unfinished(self, now: datetime, limit: int) -> list[str]:
        """Order ids of payments that still need the provider and hold no live lease, oldest change first."""
        documents = self.payments.find(
            {
                "status": {"$in": [status.value for status in UNFINISHED]},
                "$or": [{"lease": None}, {"lease.until": {"$lte": now}}],
            },
            {"_id": 1},
            sort=[("updated_at", ASCENDING)],
            limit=limit,
        )
        return [document["_id"] for document in documents]

    def apply(self, transition: Transition) -> list[PendingEvent] | None:
        """Store the transition with its events; None if the payment changed since it was decided
        (or, for a new payment, if another event created it first): the caller re-reads."""
        pending, push = push_events(transition.events)
        state = _to_document(transition.payment)
        if transition.from_version == 0:
            try:
                self.payments.insert_one({**state, PENDING_EVENTS: [event.to_document() for event in pending]})
            except DuplicateKeyError:
                return None
            return pending
        result = self.payments.update_one(
            {"_id": transition.payment.order_id, VERSION: transition.from_version},
            {"$set": {key: value for key, value in state.items() if key != "_id"}, "$push": push},
        )
        return pending if result.matched_count else None


def _to_document(payment: Payment) -> dict[str, Any]:
    return {
        "_id": payment.order_id,
        "status": payment.status.value,
        "user_id": payment.user_id,
        "payment_method": payment.payment_method,
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
        "cancel_requested": payment.cancel_requested,
        "intent_id": payment.intent_id,
        "refund_id": payment.refund_id,
        "failure_reason": payment.failure_reason,
        "decline_code": payment.decline_code,
        "lease": {"holder": payment.lease.holder, "until": payment.lease.until} if payment.lease else None,
        "history": [
            {"status": entry.status.value, "at": entry.at, "reason": entry.reason} for entry in payment.history
        ],
        "correlation_id": payment.correlation_id,
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
        VERSION: payment.version,
    }


def _to_payment(document: dict[str, Any]) -> Payment:
    lease = document.get("lease")
    return Payment(
        order_id=document["_id"],
        status=PaymentStatus(document["status"]),
        created_at=document["created_at"],
        updated_at=document["updated_at"],
        user_id=document.get("user_id"),
        payment_method=document.get("payment_method"),
        amount_cents=document.get("amount_cents"),
        currency=document.get("currency"),
        cancel_requested=document.get("cancel_requested", False),
        intent_id=document.get("intent_id"),
        refund_id=document.get("refund_id"),
        failure_reason=document.get("failure_reason"),
        decline_code=document.get("decline_code"),
        lease=Lease(lease["holder"], lease["until"]) if lease else None,
        history=tuple(
            HistoryEntry(PaymentStatus(entry["status"]), entry["at"], entry.get("reason"))
            for entry in document.get("history", [])
        ),
        correlation_id=document.get("correlation_id"),
        version=document[VERSION],
    )
