"""A function's secrets (its MongoDB connection string, the payment provider's key), read from
Secrets Manager within the invocation's time, and read again once they are older than
SECRET_MAX_AGE_SECONDS, so that a warm container follows a rotation.

Through Powertools Parameters on the container's client with the shared timeouts, signed with
the container's own credentials (shop_common.aws). Not through the AWS Parameters and Secrets
Lambda Extension: its requests must carry AWS_SESSION_TOKEN, which Lambda does not give a
SnapStart function (it gets container credentials), and where it could run (the functions without
SnapStart) nobody waits for the cold start it would save.

The container keeps what it read (``secret_cache``) until a SnapStart snapshot or restore lets go
of it (shop_common.container). What is built from a secret records it (``built_from``): at the
start of an invocation (shop_common.runtime.within_invocation) every secret past its age is read
again and, if its value changed, whatever was built from it is let go of and closed (the MongoDB
client, the Stripe provider), to be rebuilt from the new value at its next use; an unchanged value
keeps them. Never within an invocation: what it holds stays open until it ends.
"""

from __future__ import annotations

import hashlib
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
    # Imported here: boto3 costs ~200 ms of cold start, paid only by functions that read a secret.
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=create_client("secretsmanager", None, SECRET_BUDGET))


def _read_now(secret_id: str) -> SecretRead:
    secret = secrets_provider().get(secret_id, force_fetch=True)  # its age is SecretCache's
    value = secret if isinstance(secret, str) else secret.decode()
    return SecretRead(value, SecretVersion(secret_id, hashlib.sha256(value.encode()).hexdigest()), clock())
