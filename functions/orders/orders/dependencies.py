"""The orders service's settings and per-container dependencies (see shop_common.runtime)."""

import os
from datetime import timedelta

from orders.repository import OrdersRepository
from orders.service import OrdersService
from shop_common.container import per_container
from shop_common.runtime import Dependencies, build_dependencies

# The contract's deadline: an order still PENDING this long after it was placed is rejected.
DEFAULT_DEADLINE_MINUTES = 30


def order_deadline() -> timedelta:
    """``ORDER_DEADLINE_MINUTES`` (the template's OrderDeadlineMinutes; fractions for the local stack's --fast)."""
    return timedelta(minutes=float(os.environ.get("ORDER_DEADLINE_MINUTES") or DEFAULT_DEADLINE_MINUTES))


@per_container
def dependencies() -> Dependencies[OrdersRepository]:
    return build_dependencies(OrdersRepository)


@per_container
def service() -> OrdersService:
    deps = dependencies()
    return OrdersService(deps.repository, deps.outbox, order_deadline())
