"""Idempotency-Key for POST /orders: Powertools idempotency on a MongoDB persistence layer.

Keyed by the Idempotency-Key alone; the validated body is hashed, so a reused key with a
different body is refused. A raised error (every 4xx) deletes the record: it stores nothing.
Imported only by requests that carry a key: Powertools idempotency imports boto3 (for its
DynamoDB layer), about 100 ms of cold start that GET requests need not pay.
"""

from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from orders.dependencies import dependencies
from orders.domain import IdempotencyKeyInFlight, IdempotencyKeyReused
from shop_common.idempotency import MongoPersistenceLayer
from shop_common.idempotency_ttl import IDEMPOTENCY_TTL_SECONDS

Placement = Callable[[dict[str, Any]], dict[str, Any]]

config = IdempotencyConfig(
    event_key_jmespath="key",
    payload_validation_jmespath="body",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
)
store = MongoPersistenceLayer(lambda: dependencies().repository.idempotency)


@cache
def _once(place: Placement) -> Callable[..., dict[str, Any]]:
    @idempotent_function(data_keyword_argument="request", persistence_store=store, config=config)
    def place_order_once(request: dict[str, Any]) -> dict[str, Any]:
        return place(request["body"])

    return place_order_once


def place_once(key: str, body: dict[str, Any], place: Placement, context: LambdaContext) -> dict[str, Any]:
    """``place(body)``'s result, computed at most once per key (replayed for 24 hours)."""
    config.register_lambda_context(context)
    try:
        return _once(place)(request={"key": key, "body": body})
    except IdempotencyValidationError:
        raise IdempotencyKeyReused("This Idempotency-Key was used with a different request body.") from None
    except IdempotencyAlreadyInProgressError:
        raise IdempotencyKeyInFlight("A request with this Idempotency-Key is still in progress.") from None
