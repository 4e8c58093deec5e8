"""A MongoDB persistence layer for Powertools idempotency.

Powertools drives the protocol (in-progress record, payload hash check, stored response,
record deleted when the function raises); this class only stores records. One document
per key, ``_id`` = the hashed key. ``expires_at`` carries a TTL index so MongoDB removes
expired keys by itself; the comparisons below do not rely on the TTL monitor's timing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS, DataRecord
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from shop_common.idempotency_ttl import EXPIRES_AT


class MongoPersistenceLayer(BasePersistenceLayer):
    def __init__(self, collection: Callable[[], Collection]) -> None:
        """``collection`` is called at each use, so the layer can be declared at import time
        while the database connection is only made at the first invocation."""
        super().__init__()
        self._get_collection = collection

    @property
    def _collection(self) -> Collection:
        return self._get_collection()

    def _get_record(self, idempotency_key: str) -> DataRecord:
        document = self._collection.find_one({"_id": idempotency_key})
        if document is None:
            raise IdempotencyItemNotFoundError
        return self._to_record(document)

    def _put_record(self, data_record: DataRecord) -> None:
        """Insert, or take over a record that has expired (or whose holder timed out)."""
        now = datetime.now(UTC)
        now_ms = int(now.timestamp() * 1000)
        takeover = {
            "_id": data_record.idempotency_key,
            "$or": [
                {"expiry_timestamp": {"$lt": int(now.timestamp())}},
                {
                    "status": STATUS_CONSTANTS["INPROGRESS"],
                    "in_progress_expiry_timestamp": {"$lt": now_ms},
                },
            ],
        }
        try:
            # No match: the upsert inserts, and a live record with this _id makes it fail.
            self._collection.update_one(takeover, {"$set": self._to_document(data_record)}, upsert=True)
        except DuplicateKeyError:
            raise IdempotencyItemAlreadyExistsError from None

    def _update_record(self, data_record: DataRecord) -> None:
        fields = self._to_document(data_record)
        fields.pop("in_progress_expiry_timestamp")
        self._collection.update_one({"_id": data_record.idempotency_key}, {"$set": fields})

    def _delete_record(self, data_record: DataRecord) -> None:
        self._collection.delete_one({"_id": data_record.idempotency_key})

    @staticmethod
    def _to_document(record: DataRecord) -> dict[str, Any]:
        expiry = record.expiry_timestamp or 0
        return {
            "status": record.status,
            "expiry_timestamp": expiry,
            EXPIRES_AT: datetime.fromtimestamp(expiry, UTC),
            "in_progress_expiry_timestamp": record.in_progress_expiry_timestamp,
            "response_data": record.response_data,
            "payload_hash": record.payload_hash,
        }

    @staticmethod
    def _to_record(document: dict[str, Any]) -> DataRecord:
        return DataRecord(
            idempotency_key=document["_id"],
            status=document["status"],
            expiry_timestamp=document.get("expiry_timestamp"),
            in_progress_expiry_timestamp=document.get("in_progress_expiry_timestamp"),
            response_data=document.get("response_data", ""),
            payload_hash=document.get("payload_hash", ""),
        )
