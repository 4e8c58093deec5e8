"""What a service's functions share within a container, built once, at the first invocation
(or before a SnapStart snapshot, by a rehearsal), and how long the current invocation may still run:
MongoDB work is attempted again only while it has time for it (``attempts_in_time``).

Built lazily rather than at import so that importing a handler never touches the network
(tests and tools import freely); every later invocation of the container reuses it. Each
service declares its own with ``@per_container`` (shop_common.container), so a SnapStart
snapshot or restore lets go of all of it at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from typing import Any, Generic, Protocol, TypeVar

from pymongo.collection import Collection
from pymongo.database import Database

from shop_common.mongo import SERVER_SELECTION_TIMEOUT_SECONDS, indexed_repository
from shop_common.outbox import Outbox
from shop_common.publisher import SnsPublisher
from shop_common.secrets import renew_expired_secrets
from shop_common.settings import ServiceSettings


class PublishingRepository(Protocol):
    def ensure_indexes(self) -> None: ...
    def outbox_collections(self) -> list[Collection]: ...


RepositoryT = TypeVar("RepositoryT", bound=PublishingRepository)
EventT = TypeVar("EventT")
ResultT = TypeVar("ResultT")

# What an invocation keeps once its MongoDB work has run out of time: to fail the record (or
# answer 503), log why and return, before Lambda's timeout would fail the whole batch.
MONGODB_RESERVE_SECONDS = 1.0
# An attempt of a compare-and-set loop reads and writes under the client's own timeouts (not a
# transaction's deadline): it may wait out a server selection before it fails, so it starts only
# while that and the reserve still fit.
COMPARE_AND_SET_RESERVE_SECONDS = SERVER_SELECTION_TIMEOUT_SECONDS + MONGODB_RESERVE_SECONDS

# The running invocation's Lambda context clock; a context variable, so that concurrent
# invocations in one process (tests, the local stack) each see their own.
_remaining_millis: ContextVar[Callable[[], int] | None] = ContextVar("remaining_millis", default=None)


class OutOfTime(TimeoutError):
    """The invocation has too little time left for another attempt at its work: the record fails
    and returns to its queue, an API caller gets a 503 to retry (shop_common.http)."""


def within_invocation(handler: Callable[[EventT, Any], ResultT]) -> Callable[[EventT, Any], ResultT]:
    """Wrap a Lambda handler so that shared code deep in the call (the outbox) can ask
    ``seconds_left()`` instead of being handed the context through every layer, and so that
    secrets past their age are read again before the invocation starts (shop_common.secrets)."""

    @wraps(handler)
    def run(event: EventT, context: Any) -> ResultT:
        token = _remaining_millis.set(context.get_remaining_time_in_millis)
        try:
            renew_expired_secrets()
            return handler(event, context)
        finally:
            _remaining_millis.reset(token)

    return run


def seconds_left() -> float | None:
    """Seconds the current invocation may still run; None outside ``within_invocation``
    (and in threads it started, which do not inherit the context)."""
    remaining = _remaining_millis.get()
    return None if remaining is None else remaining() / 1000


def ensure_time_for_attempt(
    attempts: int, last_error: BaseException | None = None, reserve: float = MONGODB_RESERVE_SECONDS
) -> None:
    """Raise OutOfTime unless the invocation has more than ``reserve`` seconds left for another
    attempt (outside an invocation it always has); ``attempts`` made so far, the last failing
    with ``last_error``, are what the error reports."""
    left = seconds_left()
    if left is not None and left <= reserve:
        because = f": {last_error}" if last_error else ""
        raise OutOfTime(
            f"Given up after {attempts} attempts, {left:.1f} s left in the invocation{because}"
        ) from last_error


def attempts_in_time(limit: int) -> Iterator[int]:
    """``range(limit)`` for a loop that retries MongoDB work (a compare-and-set lost to another
    writer), each attempt started only while the invocation has time for it: the loop raises
    OutOfTime instead of running into Lambda's timeout."""
    for attempt in range(limit):
        ensure_time_for_attempt(attempt, reserve=COMPARE_AND_SET_RESERVE_SECONDS)
        yield attempt


@dataclass(frozen=True)
class Dependencies(Generic[RepositoryT]):
    repository: RepositoryT
    outbox: Outbox

    def outbox_collections(self) -> list[Collection]:
        return self.repository.outbox_collections()

    def warm_up(self) -> None:
        """Build now what the first publish would (before a SnapStart snapshot)."""
        self.outbox.warm_up()


def build_dependencies(make_repository: Callable[[Database], RepositoryT]) -> Dependencies[RepositoryT]:
    """Settings from the environment, the service's database on the container's client
    (indexes ensured once), and its outbox publishing to the topic."""
    settings = ServiceSettings.from_env()
    repository = indexed_repository(settings, make_repository)
    return Dependencies(repository=repository, outbox=Outbox(SnsPublisher(settings), seconds_left))
