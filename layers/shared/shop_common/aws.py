"""Every AWS client the functions create, with timeouts and retries that fit one invocation.

botocore's defaults (60 s to connect, 60 s per read, retries on top) let one hung endpoint
hold a function past its 10 s timeout, so each client gets a budget here, and only here.
The worst case of a call must leave room for MongoDB (3 s server selection) and an answer.
botocore is imported only when a client is built: read-only paths never load it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from shop_common.container import per_container

# Standard retry mode waits up to this, doubling per retry, before attempting again (throttling).
RETRY_BACKOFF_BASE_SECONDS = 1.0


@dataclass(frozen=True)
class CallBudget:
    connect_timeout: float
    read_timeout: float
    max_attempts: int  # the first attempt included

    @property
    def worst_case_seconds(self) -> float:
        """How long one call may take, every attempt timing out, before it raises."""
        attempts = self.max_attempts * (self.connect_timeout + self.read_timeout)
        return attempts + RETRY_BACKOFF_BASE_SECONDS * (2 ** (self.max_attempts - 1) - 1)

    def botocore_config(self) -> Any:
        from botocore.config import Config

        return Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            # Standard mode also spends from a client-wide retry quota, so a failing service
            # is not hammered by every caller retrying at once.
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
        )


# SNS PublishBatch and Secrets Manager reads: repeating one is harmless (consumers are
# idempotent), so one retry absorbs a blip. SNS and Secrets Manager answer in tens of ms.
REPEATABLE = CallBudget(connect_timeout=1.0, read_timeout=1.5, max_attempts=2)
# SES SendEmail: a request repeated after its answer was lost could send a second email, so
# botocore never repeats it; the caller decides from the error whether sending again is safe.
SINGLE_ATTEMPT = CallBudget(connect_timeout=1.0, read_timeout=3.0, max_attempts=1)


@cache
def botocore_models() -> Any:
    """The process's botocore loader: the services' models and endpoint rules, read from botocore's
    files once and cached. It holds nothing of a container (no connection, no credential, no
    setting), so it outlives a SnapStart snapshot as it is, warmed: a client after the first of its
    service costs a few ms instead of ~40."""
    from botocore.loaders import create_loader

    return create_loader()


@per_container
def botocore_session() -> Any:
    """The container's botocore session (botocore, not boto3: boto3's session layer adds ~30 ms of
    cold start and nothing used here), on the process's models. Per container, not per process: a
    session resolves the credentials at its first client and keeps them, and under SnapStart
    those of the published version's INIT must not sign a restored container's requests (a new
    session costs ~6 ms once per container)."""
    import botocore.session

    session = botocore.session.get_session()
    session.register_component("data_loader", botocore_models())
    return session


@per_container(close=lambda client: client.close())  # its connection pool
def create_client(service_name: str, endpoint_url: str | None, budget: CallBudget) -> Any:
    """The container's botocore client for ``service_name`` within ``budget``."""
    return botocore_session().create_client(service_name, endpoint_url=endpoint_url, config=budget.botocore_config())
