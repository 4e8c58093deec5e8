"""Idempotency-Key for POST /orders: Powertools idempotency on a MongoDB persistence layer.

Keyed by the Idempotency-Key in the caller's scope (the same key from two callers is two
keys); the validated body is hashed, so a reused key with a different body is refused. A
raised error (every 4xx) deletes the record: it stores nothing.
The record alone cannot make a retry safe: the order's insert and the record's completion
are two writes, and an attempt can fail between them. So the key also fixes the order's id
(IdempotencyKey.order_id), and a retry that finds the record gone or expired finds the order.
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
from orders.domain import IdempotencyKey, IdempotencyKeyInFlight, IdempotencyKeyReused
from shop_common.idempotency import MongoPersistenceLayer
from shop_common.idempotency_ttl import IDEMPOTENCY_TTL_SECONDS
from shop_common.identity import Caller

# Places the caller's order of a request body under its key; returns the order as JSON.
Placement = Callable[[Caller, dict[str, Any], IdempotencyKey], dict[str, Any]]

config = IdempotencyConfig(
    event_key_jmespath="[scope, key]",
    payload_validation_jmespath="body",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
)
store = MongoPersistenceLayer(lambda: dependencies().repository.idempotency)


@cache
def _once(place: Placement) -> Callable[..., dict[str, Any]]:
    # Only `request` identifies (scope and key) and is hashed (body); the caller rides along.
    @idempotent_function(data_keyword_argument="request", persistence_store=store, config=config)
    def place_order_once(request: dict[str, Any], caller: Caller) -> dict[str, Any]:
        return place(caller, request["body"], IdempotencyKey(scope=request["scope"], key=request["key"]))

    return place_order_once


def place_once(
    caller: Caller, idempotency_key: IdempotencyKey, body: dict[str, Any], place: Placement, context: LambdaContext
) -> dict[str, Any]:
    """``place(caller, body, idempotency_key)``'s result, computed at most once per key (replayed for 24 hours)."""
    config.register_lambda_context(context)
    request = {"scope": idempotency_key.scope, "key": idempotency_key.key, "body": body}
    try:
        return _once(place)(request=request, caller=caller)
    except IdempotencyValidationError:
        raise IdempotencyKeyReused("This Idempotency-Key was used with a different request body.") from None
    except IdempotencyAlreadyInProgressError:
        raise IdempotencyKeyInFlight("A request with this Idempotency-Key is still in progress.") from None
