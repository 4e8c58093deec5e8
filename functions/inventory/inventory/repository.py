"""Inventory data access: the only module of the service that knows pymongo.

Reserving and releasing touch several products and the order's reservation record, so
each runs in one multi-document transaction: all lines or none, and the reservation
record (``_id`` = order id) makes it happen at most once per order. A transaction is run again
after a write conflict, which is how concurrent orders for the same sku serialise, while the
invocation has time for it (shop_common.transactions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database

from inventory.domain import NOTHING_HELD, Product, ProductUpdate, ReservationDecision, ReservationStatus
from shop_common.events import OrderLine
from shop_common.outbox import PENDING_EVENTS, PendingEvent, ensure_outbox_index
from shop_common.transactions import run_transaction

Decide = Callable[[Mapping[str, Product]], ReservationDecision]


class StockChanged(Exception):
    """A guarded stock update matched nothing: abort, and let the transaction run again."""


class InventoryRepository:
    def __init__(self, database: Database) -> None:
        self._client = database.client
        self.products: Collection = database["products"]
        self.reservations: Collection = database["reservations"]

    def ensure_indexes(self) -> None:
        ensure_outbox_index(self.reservations)

    def outbox_collections(self) -> list[Collection]:
        return [self.reservations]

    # --- catalogue ---

    def put_product(self, sku: str, update: ProductUpdate, now: datetime) -> Product:
        document = self.products.find_one_and_update(
            {"_id": sku},
            {"$set": {**update.model_dump(), "updated_at": now}, "$setOnInsert": {"reserved": 0}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert document is not None  # an upsert always returns the document
        return _to_product(document)

    def get_product(self, sku: str) -> Product | None:
        document = self.products.find_one({"_id": sku})
        return _to_product(document) if document else None

    # --- reservations ---

    def reserve(self, order_id: str, lines: Sequence[OrderLine], decide: Decide, now: datetime) -> PendingEvent | None:
        """Decide and record the order's reservation once; None if it was already decided
        (or cancelled before it arrived)."""

        def attempt(session: ClientSession) -> PendingEvent | None:
            if self.reservations.find_one({"_id": order_id}, {"_id": 1}, session=session):
                return None
            skus = [line.sku for line in lines]
            products = {
                document["_id"]: _to_product(document)
                for document in self.products.find({"_id": {"$in": skus}}, session=session)
            }
            decision = decide(products)
            if decision.status is ReservationStatus.RESERVED:
                # The counters cannot overflow: every unit in `reserved` was first in `available`,
                # which a PUT sets to at most 10^9 and a release only refills; int64 would take
                # 9 * 10^9 restocks to the maximum. MongoDB widens an int32 $inc result to int64.
                for line in lines:
                    taken = self.products.update_one(
                        {"_id": line.sku, "available": {"$gte": line.quantity}},
                        {"$inc": {"available": -line.quantity, "reserved": line.quantity}},
                        session=session,
                    )
                    if taken.modified_count != 1:
                        raise StockChanged(line.sku)
            pending = PendingEvent.of(decision.event)
            self.reservations.insert_one(
                {
                    "_id": order_id,
                    "status": decision.status.value,
                    "lines": [line.model_dump() for line in decision.lines],
                    "history": [{"status": decision.status.value, "at": now}],
                    PENDING_EVENTS: [pending.to_document()],
                },
                session=session,
            )
            return pending

        return run_transaction(self._client, attempt)

    def release(self, order_id: str, released_as: ReservationStatus, now: datetime) -> ReservationStatus | None:
        """Return an order's stock exactly once, whether the order was cancelled, its payment
        failed or it was rejected (``released_as`` says which), and whichever arrives first: a
        reservation released already returns nothing again. A release that overtakes its order
        leaves a released record, so the late OrderPlaced reserves nothing. Returns the status
        the reservation had, or None if there was none."""

        def attempt(session: ClientSession) -> ReservationStatus | None:
            document = self.reservations.find_one({"_id": order_id}, session=session)
            if document is None:
                self.reservations.insert_one(
                    {
                        "_id": order_id,
                        "status": released_as.value,
                        "lines": [],
                        "history": [{"status": released_as.value, "at": now}],
                        PENDING_EVENTS: [],
                    },
                    session=session,
                )
                return None
            previous = ReservationStatus(document["status"])
            if previous in NOTHING_HELD:
                return previous
            if previous is ReservationStatus.RESERVED:
                for line in document["lines"]:
                    self.products.update_one(
                        {"_id": line["sku"]},
                        {"$inc": {"available": line["quantity"], "reserved": -line["quantity"]}},
                        session=session,
                    )
            self.reservations.update_one(
                {"_id": order_id},
                {
                    "$set": {"status": released_as.value},
                    "$push": {"history": {"status": released_as.value, "at": now}},
                },
                session=session,
            )
            return previous

        return run_transaction(self._client, attempt)


def _to_product(document: Mapping[str, Any]) -> Product:
    return Product(
        sku=document["_id"],
        name=document["name"],
        unit_price_cents=document["unit_price_cents"],
        available=document["available"],
        reserved=document["reserved"],
    )
