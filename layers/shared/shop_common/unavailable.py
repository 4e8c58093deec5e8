"""Whether an error says a dependency is down or busy, rather than that the request or the record
is wrong: one judgement for the API (503 with Retry-After, shop_common.http) and the consumers
(the record backs off, shop_common.redelivery), and the one place an outage is counted
(DatabaseUnavailable, alarmed)."""

from __future__ import annotations

import sys

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pymongo.errors import ConnectionFailure

metrics = Metrics()  # flushed by the handler's log_metrics, like every metric of the function


def _unavailable_dependency_errors() -> tuple[type[BaseException], ...]:
    """pymongo's connection-level errors (server selection, network errors and timeouts, an
    election's not-primary answers, connection pool timeouts), anything that did not finish in
    the invocation's time (a transaction out of time, say), and a failure to read the connection
    string's secret. Powertools parameters imports boto3 and is loaded only by a function that read
    its secret with it, so its error is looked up among the loaded modules: had it been raised, it
    would be there."""
    unavailable: tuple[type[BaseException], ...] = (ConnectionFailure, TimeoutError)
    parameters = sys.modules.get("aws_lambda_powertools.utilities.parameters.exceptions")
    return unavailable if parameters is None else (*unavailable, parameters.GetParameterError)


def is_dependency_unavailable(error: BaseException) -> bool:
    """Whether ``error`` or an error it was raised from says a dependency could not be reached
    (Powertools idempotency, for one, wraps its store's errors)."""
    unavailable = _unavailable_dependency_errors()
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, unavailable):
            return True
        seen.add(id(current))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return False


def judged_unavailable(error: BaseException) -> bool:
    """``is_dependency_unavailable``, counted (DatabaseUnavailable) when it is: asked once per failure
    where the failure is answered for (the API's 503, a consumer's backoff, a notification that
    fails), so each failure counts once."""
    if not is_dependency_unavailable(error):
        return False
    metrics.add_metric(name="DatabaseUnavailable", unit=MetricUnit.Count, value=1)
    return True
