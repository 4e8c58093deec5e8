"""The users service's per-container dependencies (see shop_common.runtime)."""

from functools import cache

from shop_common.runtime import Dependencies, build_dependencies
from users.repository import UsersRepository
from users.service import UsersService


@cache
def dependencies() -> Dependencies[UsersRepository]:
    return build_dependencies(UsersRepository)


@cache
def service() -> UsersService:
    deps = dependencies()
    return UsersService(deps.repository, deps.outbox)
