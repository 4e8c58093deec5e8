"""One MongoDB client per container, configured for Lambda.

The client is created on first use and reused by every invocation of the container
(MongoDB Atlas guidance for Lambda). Timeouts fail fast: an API call should answer
with an error in seconds, not hang for pymongo's default 30 s server selection.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

from shop_common.aws import REPEATABLE
from shop_common.settings import ServiceSettings

# Seconds a cached secret is trusted before it is read again (picks up a rotation).
SECRET_MAX_AGE_SECONDS = 300
SERVER_SELECTION_TIMEOUT_SECONDS = 3
# Reading a secret twice is harmless: the shared budget for repeatable AWS calls.
SECRET_BUDGET = REPEATABLE


def connection_string(settings: ServiceSettings) -> str:
    """The service's own connection string: ``MONGODB_URI`` if set, else its secret."""
    if settings.mongodb_uri:
        return settings.mongodb_uri
    if not settings.mongodb_secret_id:
        raise RuntimeError("Set MONGODB_URI or MONGODB_SECRET_ID for this function")
    from_extension = _secret_from_extension(settings.mongodb_secret_id)
    if from_extension is not None:
        return from_extension
    secret = secrets_provider().get(settings.mongodb_secret_id, max_age=SECRET_MAX_AGE_SECONDS)
    return secret if isinstance(secret, str) else secret.decode()


@cache
def secrets_provider() -> Any:
    """Powertools' Secrets Manager provider (and its cache), once per container, on a client
    with the shared timeouts."""
    # Imported here: boto3 costs ~200 ms of cold start, paid only without the extension.
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto_config=SECRET_BUDGET.botocore_config())


def _secret_from_extension(secret_id: str) -> str | None:
    """The secret through the AWS Parameters and Secrets Lambda Extension (template parameter
    SecretsExtensionLayerArn), which serves it over localhost with its own cache and spares the
    function importing boto3. None when the function runs without the extension.

    An extension that is there but does not answer in time raises: falling back would add
    boto3's import and a second slow call, overrunning the function's timeout."""
    token = os.environ.get("AWS_SESSION_TOKEN")
    if not token:
        return None
    import json  # here: only functions that read a secret load urllib (~2 ms once pymongo is loaded)
    from urllib.parse import quote
    from urllib.request import Request, urlopen

    port = os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773")
    url = f"http://localhost:{port}/secretsmanager/get?secretId={quote(secret_id, safe='')}"
    request = Request(url, headers={"X-Aws-Parameters-Secrets-Token": token})
    try:
        # One timeout for connecting and each read; the extension asks Secrets Manager in turn.
        with urlopen(request, timeout=SECRET_BUDGET.read_timeout) as response:
            return str(json.loads(response.read())["SecretString"])
    except TimeoutError:
        raise
    except (OSError, ValueError, KeyError):  # refused (no extension), HTTP error, or not a secret string
        return None


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
