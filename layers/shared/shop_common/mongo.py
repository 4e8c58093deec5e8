"""One MongoDB client per container, configured for Lambda.

The client is created on first use and reused by every invocation of the container
(MongoDB Atlas guidance for Lambda). Timeouts fail fast: an API call should answer
with an error in seconds, not hang for pymongo's default 30 s server selection.
"""

from __future__ import annotations

from functools import cache

from pymongo import MongoClient
from pymongo.database import Database

from shop_common.secrets import read_secret
from shop_common.settings import ServiceSettings

SERVER_SELECTION_TIMEOUT_SECONDS = 3


def connection_string(settings: ServiceSettings) -> str:
    """The service's own connection string: ``MONGODB_URI`` if set, else its secret."""
    if settings.mongodb_uri:
        return settings.mongodb_uri
    if not settings.mongodb_secret_id:
        raise RuntimeError("Set MONGODB_URI or MONGODB_SECRET_ID for this function")
    return read_secret(settings.mongodb_secret_id)


@cache
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
