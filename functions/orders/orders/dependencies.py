"""The orders service's per-container dependencies (see shop_common.runtime)."""

from functools import cache

from orders.repository import OrdersRepository
from orders.service import OrdersService
from shop_common.runtime import Dependencies, build_dependencies


@cache
def dependencies() -> Dependencies[OrdersRepository]:
    return build_dependencies(OrdersRepository)


@cache
def service() -> OrdersService:
    deps = dependencies()
    return OrdersService(deps.repository, deps.outbox)
