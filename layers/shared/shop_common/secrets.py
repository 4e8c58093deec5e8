"""A function's secrets (its MongoDB connection string, the payment provider's key), read from
Secrets Manager within the invocation's time.

Through the AWS Parameters and Secrets Lambda Extension when the function has it (template
parameter SecretsExtensionLayerArn): it serves secrets over localhost with its own cache and
spares the function importing boto3 (about 200 ms of cold start). Without it, Powertools
Parameters reads them on a client with the shared timeouts, and caches them 5 minutes (until a
SnapStart snapshot or restore drops the provider and its cache: shop_common.container).
"""

from __future__ import annotations

import os
from typing import Any

from shop_common.aws import REPEATABLE, create_client
from shop_common.container import per_container

# Seconds a cached secret is trusted before it is read again (picks up a rotation).
SECRET_MAX_AGE_SECONDS = 300
# Reading a secret twice is harmless: the shared budget for repeatable AWS calls.
SECRET_BUDGET = REPEATABLE


def read_secret(secret_id: str) -> str:
    """The secret string of ``secret_id``."""
    from_extension = _secret_from_extension(secret_id)
    if from_extension is not None:
        return from_extension
    secret = secrets_provider().get(secret_id, max_age=SECRET_MAX_AGE_SECONDS)
    return secret if isinstance(secret, str) else secret.decode()


@per_container
def secrets_provider() -> Any:
    """Powertools' Secrets Manager provider (and its cache), once per container, on the
    container's client with the shared timeouts (AWS_ENDPOINT_URL, if set, is its endpoint)."""
    # Imported here: boto3 costs ~200 ms of cold start, paid only without the extension.
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=create_client("secretsmanager", None, SECRET_BUDGET))


def _secret_from_extension(secret_id: str) -> str | None:
    """The secret through the extension; None when the function runs without it.

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
