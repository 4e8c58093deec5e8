"""The users service's per-container dependencies (see shop_common.runtime)."""

from functools import cache

from shop_common.runtime import Dependencies, build_dependencies
from users.repository import UsersRepository


@cache
def dependencies() -> Dependencies[UsersRepository]:
    return build_dependencies(UsersRepository)
