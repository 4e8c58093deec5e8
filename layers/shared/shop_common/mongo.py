"""One MongoDB client per container, configured for Lambda.

The client is created on first use and reused by every invocation of the container
(MongoDB Atlas guidance for Lambda), until a SnapStart snapshot or restore closes it
(shop_common.container) or its connection string's secret changes (shop_common.secrets).
Timeouts fail fast: an API call should answer with an error in seconds, not hang for pymongo's
default 30 s server selection.

Connections are few, because Atlas counts them per node (M10: 1,500) and every container keeps
its own (tests/unit/test_connection_budget.py adds them up over the template): a pool of
``MAX_POOL_SIZE`` to the primary and one monitoring connection to each member.

The connection string may name ``authMechanism=MONGODB-AWS`` and hold no password: the driver
then signs in with the function's role, whose credentials pymongo-auth-aws takes from botocore's
chain (the container credentials provider under SnapStart).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from typing import Protocol, TypeVar

from pymongo import MongoClient
from pymongo.database import Database

from shop_common.container import per_container
from shop_common.secrets import read_secret
from shop_common.settings import ServiceSettings

SERVER_SELECTION_TIMEOUT_SECONDS = 3
# A container runs one invocation at a time and only its main thread uses MongoDB (the relay's
# threads publish to SNS): one connection serves it, a second spares it waiting on the driver's
# own background work (closing cursors).
MAX_POOL_SIZE = 2
# Polling: one monitoring connection per member. Streaming would add a second (the round-trip
# timer); pymongo picks polling itself on Lambda, said here so the budget does not rely on it.
SERVER_MONITORING_MODE = "poll"


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


def close_client(client: MongoClient) -> None:
    """Close the client and forget the AWS credentials MONGODB-AWS signed in with: the driver
    caches them per process, and a container restored from a snapshot must fetch its own."""
    client.close()
    aws_auth = sys.modules.get("pymongo_auth_aws.auth")  # imported only by a MONGODB-AWS sign-in
    if aws_auth is not None:
        aws_auth.set_cached_credentials(None)


@per_container(close=close_client)
def client_for(uri: str, app_name: str) -> MongoClient:
    return MongoClient(
        uri,
        appname=app_name,
        maxPoolSize=MAX_POOL_SIZE,
        serverMonitoringMode=SERVER_MONITORING_MODE,
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
