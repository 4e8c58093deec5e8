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

A value also remembers what it was built from that may change while the container lives: the
secrets it read (shop_common.secrets records each read with ``built_from``), and those of the
values it asked for. ``release_outdated()`` lets go of the values built from what is no longer
current (a rotated secret), closing them, and keeps every other: the next call builds them from
the new value.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

P = ParamSpec("P")
T = TypeVar("T")

_caches: list[PerContainer[..., Any]] = []
# What the value being built in this thread was built from so far (None: nothing is being built).
_sources: ContextVar[set[Hashable] | None] = ContextVar("per_container_sources", default=None)


@dataclass(frozen=True)
class Built(Generic[T]):
    value: T
    sources: frozenset[Hashable]  # what it was built from that may change (a secret's value)


def built_from(*sources: Hashable) -> None:
    """Record that the value being built, if any, is built from ``sources``."""
    building = _sources.get()
    if building is not None:
        building.update(sources)


class PerContainer(Generic[P, T]):
    """A function whose results are built once per container (per distinct arguments)."""

    def __init__(self, build: Callable[P, T], close: Callable[[Any], object] | None) -> None:
        self._build = build
        self._close = close
        self._values: dict[Hashable, Built[T]] = {}
        # Two invocations of one container (threads in the tests, the relay's publishers) build once.
        self._lock = threading.Lock()
        functools.update_wrapper(self, build)
        _caches.append(self)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        key = (args, tuple(sorted(kwargs.items())))
        with self._lock:
            built = self._values.get(key)
            if built is None:
                built = self._values[key] = self._build_recording_sources(*args, **kwargs)
        built_from(*built.sources)  # a value being built from this one is built from its sources too
        return built.value

    def _build_recording_sources(self, *args: P.args, **kwargs: P.kwargs) -> Built[T]:
        # Built while another value is being built from a secret, this one may be made of it (the
        # MongoDB client of a connection string passed as an argument): it goes when the secret changes.
        sources = set(_sources.get() or ())
        token = _sources.set(sources)
        try:
            value = self._build(*args, **kwargs)
        finally:
            _sources.reset(token)
        return Built(value, frozenset(sources))

    def cache_clear(self) -> None:
        """Forget the values, closing those that hold connections."""
        with self._lock:
            values = [built.value for built in self._values.values()]
            self._values.clear()
        self._close_all(values)

    def release_outdated(self, is_current: Callable[[Hashable], bool]) -> None:
        """Forget the values built from a source that is no longer current, closing them."""
        with self._lock:
            outdated = [key for key, built in self._values.items() if not all(map(is_current, built.sources))]
            values = [self._values.pop(key).value for key in outdated]
        self._close_all(values)

    def _close_all(self, values: Iterable[T]) -> None:
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


def release_outdated(is_current: Callable[[Hashable], bool]) -> None:
    """Let go of everything built from a source that ``is_current`` says has changed (and of
    what was built from that): the next call builds it from the current one."""
    for cache in list(_caches):
        cache.release_outdated(is_current)
