"""The inventory service's per-container dependencies (see shop_common.runtime)."""

from inventory.repository import InventoryRepository
from shop_common.container import per_container
from shop_common.runtime import Dependencies, build_dependencies


@per_container
def dependencies() -> Dependencies[InventoryRepository]:
    return build_dependencies(InventoryRepository)
