"""What the inventory functions share within a container, built once at the first invocation.

Built lazily rather than at import so that importing a handler never touches the network
(tests and tools import freely); after the first call every invocation reuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from pymongo.collection import Collection

from inventory.repository import InventoryRepository
from shop_common.mongo import database
from shop_common.outbox import Outbox
from shop_common.publisher import SnsPublisher
from shop_common.settings import ServiceSettings


@dataclass(frozen=True)
class Dependencies:
    repository: InventoryRepository
    outbox: Outbox

    def outbox_collections(self) -> list[Collection]:
        return self.repository.outbox_collections()


@cache
def dependencies() -> Dependencies:
    settings = ServiceSettings.from_env()
    repository = InventoryRepository(database(settings))
    repository.ensure_indexes()
    return Dependencies(repository=repository, outbox=Outbox(SnsPublisher(settings)))
