"""What a service's functions share within a container, built once, at the first invocation
(or before a SnapStart snapshot, by a rehearsal), and how long the current invocation may still run.

Built lazily rather than at import so that importing a handler never touches the network
(tests and tools import freely); every later invocation of the container reuses it. Each
service declares its own with ``@per_container`` (shop_common.container), so a SnapStart
snapshot or restore lets go of all of it at once.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from typing import Any, Generic, Protocol, TypeVar

from pymongo.collection import Collection
from pymongo.database import Database

from shop_common.mongo import indexed_repository
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

# The running invocation's Lambda context clock; a context variable, so that concurrent
# invocations in one process (tests, the local stack) each see their own.
_remaining_millis: ContextVar[Callable[[], int] | None] = ContextVar("remaining_millis", default=None)


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
