"""The users service's per-container dependencies (see shop_common.runtime)."""

from shop_common.container import per_container
from shop_common.runtime import Dependencies, build_dependencies
from users.repository import UsersRepository
from users.service import UsersService


@per_container
def dependencies() -> Dependencies[UsersRepository]:
    return build_dependencies(UsersRepository)


@per_container
def service() -> UsersService:
    deps = dependencies()
    return UsersService(deps.repository, deps.outbox)
