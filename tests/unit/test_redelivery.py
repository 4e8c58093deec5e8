"""Which failures of a record wait on a dependency (and so back off, shop_common.redelivery): the
same judgement as the API's 503 (shop_common.unavailable)."""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect, NotPrimaryError, ServerSelectionTimeoutError

from shop_common.redelivery import RetryLater, waits_on_dependency
from shop_common.transactions import OutOfTime


def _raised_from(cause: BaseException) -> BaseException:
    try:
        raise RuntimeError("a library's own error") from cause
    except RuntimeError as error:
        return error


@pytest.mark.parametrize(
    "error",
    [
        RetryLater("the provider is down"),
        ServerSelectionTimeoutError("no primary"),
        NotPrimaryError("not primary"),  # an election
        AutoReconnect("connection reset"),
        OutOfTime("the transaction ran out of the invocation's time"),
        _raised_from(AutoReconnect("wrapped by the idempotency store")),
    ],
    ids=["retry later", "server selection", "not primary", "auto reconnect", "out of time", "wrapped"],
)
def test_a_dependency_down_or_busy_is_waited_on(error: BaseException) -> None:
    assert waits_on_dependency(error)


@pytest.mark.parametrize("error", [ValueError("a bad record"), KeyError("order_id"), RuntimeError("a bug")])
def test_anything_else_is_the_records_own_failure(error: BaseException) -> None:
    assert not waits_on_dependency(error)
