"""What a service's functions share within a container, built once, at the first invocation.

Built lazily rather than at import so that importing a handler never touches the network
(tests and tools import freely); every later invocation of the container reuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from pymongo.collection import Collection
from pymongo.database import Database

from shop_common.mongo import database
from shop_common.outbox import Outbox
from shop_common.publisher import SnsPublisher
from shop_common.settings import ServiceSettings


class PublishingRepository(Protocol):
    def ensure_indexes(self) -> None: ...
    def outbox_collections(self) -> list[Collection]: ...


RepositoryT = TypeVar("RepositoryT", bound=PublishingRepository)


@dataclass(frozen=True)
class Dependencies(Generic[RepositoryT]):
    repository: RepositoryT
    outbox: Outbox

    def outbox_collections(self) -> list[Collection]:
        return self.repository.outbox_collections()


def build_dependencies(make_repository: Callable[[Database], RepositoryT]) -> Dependencies[RepositoryT]:
    """Settings from the environment, the service's database on the container's client
    (indexes ensured), and its outbox publishing to the topic."""
    settings = ServiceSettings.from_env()
    repository = make_repository(database(settings))
    repository.ensure_indexes()
    return Dependencies(repository=repository, outbox=Outbox(SnsPublisher(settings)))
