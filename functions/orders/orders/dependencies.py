"""The orders service's per-container dependencies (see shop_common.runtime)."""

from orders.repository import OrdersRepository
from orders.service import OrdersService
from shop_common.container import per_container
from shop_common.runtime import Dependencies, build_dependencies


@per_container
def dependencies() -> Dependencies[OrdersRepository]:
    return build_dependencies(OrdersRepository)


@per_container
def service() -> OrdersService:
    deps = dependencies()
    return OrdersService(deps.repository, deps.outbox)
