"""The inventory service's per-container dependencies (see shop_common.runtime)."""

from functools import cache

from inventory.repository import InventoryRepository
from shop_common.runtime import Dependencies, build_dependencies


@cache
def dependencies() -> Dependencies[InventoryRepository]:
    return build_dependencies(InventoryRepository)
