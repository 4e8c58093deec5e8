"""A function's secrets (its MongoDB connection string, the payment provider's key), read from
Secrets Manager within the invocation's time, and read again once they are older than
SECRET_MAX_AGE_SECONDS, so that a warm container follows a rotation.

Through the AWS Parameters and Secrets Lambda Extension when the function has it (template
parameter SecretsExtensionLayerArn): it serves secrets over localhost with its own cache (300 s
by default, which may add up to that much before a rotation is seen) and spares the function
importing boto3 (about 200 ms of cold start). Without it, through Powertools Parameters on a
client with the shared timeouts.

The container keeps what it read (``secret_cache``) until a SnapStart snapshot or restore lets go
of it (shop_common.container). What is built from a secret records it (``built_from``): at the
start of an invocation (shop_common.runtime.within_invocation) every secret past its age is read
again and, if its value changed, whatever was built from it is let go of and closed (the MongoDB
client, the Stripe provider), to be rebuilt from the new value at its next use; an unchanged value
keeps them. Never within an invocation: what it holds stays open until it ends.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from shop_common.aws import REPEATABLE, create_client
from shop_common.container import built_from, per_container, release_outdated

logger = Logger(child=True)

# Seconds a secret read is trusted before it is read again (picks up a rotation).
SECRET_MAX_AGE_SECONDS = 300
# Reading a secret twice is harmless: the shared budget for repeatable AWS calls.
SECRET_BUDGET = REPEATABLE
# The clock secrets age by (monotonic seconds; tests advance their own).
clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class SecretVersion:
    """What a value was built from: a secret, and a digest of the value it had (not the value)."""

    secret_id: str
    digest: str


@dataclass(frozen=True)
class SecretRead:
    value: str
    version: SecretVersion
    read_at: float


class SecretCache:
    """The secrets a container has read, each as last read."""

    def __init__(self) -> None:
        self._reads: dict[str, SecretRead] = {}
        self._lock = threading.Lock()  # held only around the dictionary, never while reading

    def get(self, secret_id: str) -> SecretRead:
        with self._lock:
            read = self._reads.get(secret_id)
        if read is None:
            fresh = _read_now(secret_id)
            with self._lock:
                read = self._reads.setdefault(secret_id, fresh)
        return read

    def renew_expired(self) -> bool:
        """Read again each secret older than its age; whether any value changed."""
        now = clock()
        with self._lock:
            expired = [read for read in self._reads.values() if now - read.read_at >= SECRET_MAX_AGE_SECONDS]
        changed = False
        for old in expired:
            secret_id = old.version.secret_id
            try:
                renewed = _read_now(secret_id)
            except Exception:
                # The value in use may well be valid still: kept, and read again after another max age.
                logger.warning(
                    "Could not read a secret again; its value is kept", extra={"secret_id": secret_id}, exc_info=True
                )
                renewed = SecretRead(old.value, old.version, now)
            with self._lock:
                self._reads[secret_id] = renewed
            changed = changed or renewed.version != old.version
        return changed

    def is_current(self, source: object) -> bool:
        """Whether ``source`` (what a value was built from) is the value each secret has now."""
        if not isinstance(source, SecretVersion):
            return True
        with self._lock:
            read = self._reads.get(source.secret_id)
        return read is None or read.version == source


def read_secret(secret_id: str) -> str:
    """The secret string of ``secret_id``, as the container last read it; what is being built
    from it is rebuilt when it changes."""
    read = secret_cache().get(secret_id)
    built_from(read.version)
    return read.value


def renew_expired_secrets() -> None:
    """Read again every secret past its age; let go of what was built from a value that changed."""
    cache = secret_cache()
    if cache.renew_expired():
        release_outdated(cache.is_current)


@per_container
def secret_cache() -> SecretCache:
    """The container's secrets. Built at the first read, before anything is built from a secret:
    never let go of by a rotation, only with everything else (a SnapStart snapshot or restore)."""
    return SecretCache()


@per_container
def secrets_provider() -> Any:
    """Powertools' Secrets Manager provider, once per container, on the container's client with
    the shared timeouts (AWS_ENDPOINT_URL, if set, is its endpoint)."""
    # Imported here: boto3 costs ~200 ms of cold start, paid only without the extension.
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=create_client("secretsmanager", None, SECRET_BUDGET))


def _read_now(secret_id: str) -> SecretRead:
    value = _secret_from_extension(secret_id)
    if value is None:
        secret = secrets_provider().get(secret_id, force_fetch=True)  # its age is SecretCache's
        value = secret if isinstance(secret, str) else secret.decode()
    return SecretRead(value, SecretVersion(secret_id, hashlib.sha256(value.encode()).hexdigest()), clock())


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
