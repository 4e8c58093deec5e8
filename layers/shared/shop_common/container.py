"""What a container builds once and reuses across invocations (MongoDB clients, AWS clients, the
service and its dependencies, the secrets provider and its cache), declared in one way so that
all of it can be let go at once.

``@per_container`` caches what a function builds, like ``functools.cache``; ``release_all()``
forgets every cached value, closing first those declared with ``close=``, and the next call
builds anew. SnapStart needs exactly that (shop_common.snapstart): a snapshot must hold no
connection and no secret, and a container restored from one must trust nothing built before
it, since every container restored from the same snapshot would share it: a MongoClient's
sockets and its pool of server sessions (the session ids that make retryable writes safe), an
HTTP connection pool, a secret that may have been rotated since.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, ParamSpec, TypeVar, overload

P = ParamSpec("P")
T = TypeVar("T")

_caches: list[PerContainer[..., Any]] = []


class PerContainer(Generic[P, T]):
    """A function whose results are built once per container (per distinct arguments)."""

    def __init__(self, build: Callable[P, T], close: Callable[[Any], object] | None) -> None:
        self._build = build
        self._close = close
        self._values: dict[Hashable, T] = {}
        # Two invocations of one container (threads in the tests, the relay's publishers) build once.
        self._lock = threading.Lock()
        functools.update_wrapper(self, build)
        _caches.append(self)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        key = (args, tuple(sorted(kwargs.items())))
        with self._lock:
            if key not in self._values:
                self._values[key] = self._build(*args, **kwargs)
            return self._values[key]

    def cache_clear(self) -> None:
        """Forget the values, closing those that hold connections."""
        with self._lock:
            values = list(self._values.values())
            self._values.clear()
        if self._close is not None:
            for value in values:
                self._close(value)


@overload
def per_container(build: Callable[P, T], /) -> PerContainer[P, T]: ...
@overload
def per_container(*, close: Callable[[Any], object]) -> Callable[[Callable[P, T]], PerContainer[P, T]]: ...
def per_container(
    build: Callable[P, T] | None = None, /, *, close: Callable[[Any], object] | None = None
) -> PerContainer[P, T] | Callable[[Callable[P, T]], PerContainer[P, T]]:
    """Cache what ``build`` returns for the container's life, or until ``release_all()``; ``close``
    is called on a value that is let go (a client's sockets)."""
    if build is not None:
        return PerContainer(build, None)
    return lambda function: PerContainer(function, close)


def release_all() -> None:
    """Let go of everything every ``@per_container`` function built: the next call builds anew."""
    for cache in list(_caches):
        cache.cache_clear()
