"""One MongoDB client per container, configured for Lambda.

The client is created on first use and reused by every invocation of the container
(MongoDB Atlas guidance for Lambda), until a SnapStart snapshot or restore closes it
(shop_common.container) or its connection string's secret changes (shop_common.secrets).
Timeouts fail fast: an API call should answer with an error in seconds, not hang for pymongo's
default 30 s server selection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Protocol, TypeVar

from pymongo import MongoClient
from pymongo.database import Database

from shop_common.container import per_container
from shop_common.secrets import read_secret
from shop_common.settings import ServiceSettings

SERVER_SELECTION_TIMEOUT_SECONDS = 3


class Indexed(Protocol):
    def ensure_indexes(self) -> None: ...


RepositoryT = TypeVar("RepositoryT", bound=Indexed)

# The databases (by connection string digest and name) whose indexes this process has ensured.
# Not released with the clients: a container restored from a SnapStart snapshot inherits the
# snapshot's record, so indexes are ensured once per published version instead of by every
# container; a rotated connection string (another cluster, say) has them ensured again.
_indexes_ensured: set[tuple[str, str]] = set()


def connection_string(settings: ServiceSettings) -> str:
    """The service's own connection string: ``MONGODB_URI`` if set, else its secret."""
    if settings.mongodb_uri:
        return settings.mongodb_uri
    if not settings.mongodb_secret_id:
        raise RuntimeError("Set MONGODB_URI or MONGODB_SECRET_ID for this function")
    return read_secret(settings.mongodb_secret_id)


@per_container(close=MongoClient.close)
def client_for(uri: str, app_name: str) -> MongoClient:
    return MongoClient(
        uri,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_SECONDS * 1000,
        connectTimeoutMS=3000,
        socketTimeoutMS=8000,
        maxIdleTimeMS=60000,
        retryWrites=True,
        retryReads=True,
        w="majority",
    )


def database(settings: ServiceSettings) -> Database:
    """The service's own database on the container's shared client."""
    return client_for(connection_string(settings), settings.service_name)[settings.mongodb_database]


def indexed_repository(settings: ServiceSettings, make_repository: Callable[[Database], RepositoryT]) -> RepositoryT:
    """The service's repository on its own database, whose indexes are ensured once per process."""
    uri = connection_string(settings)
    repository = make_repository(client_for(uri, settings.service_name)[settings.mongodb_database])
    database_key = (hashlib.sha256(uri.encode()).hexdigest(), settings.mongodb_database)
    if database_key not in _indexes_ensured:
        repository.ensure_indexes()
        _indexes_ensured.add(database_key)
    return repository
