"""How long idempotency keys live, and the TTL index that removes them.

Apart from shop_common.idempotency so that a repository can ensure the index without
importing Powertools idempotency (which imports boto3) on every cold start.
"""

from __future__ import annotations

from pymongo.collection import Collection

IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60
EXPIRES_AT = "expires_at"


def ensure_idempotency_indexes(collection: Collection) -> None:
    collection.create_index(EXPIRES_AT, expireAfterSeconds=0, name="idempotency_ttl")
