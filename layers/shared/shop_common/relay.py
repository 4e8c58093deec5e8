"""The scheduled outbox relay, the same for every service that publishes events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pymongo.collection import Collection

from shop_common.outbox import Outbox
from shop_common.runtime import within_invocation


class HasOutbox(Protocol):
    @property
    def outbox(self) -> Outbox: ...
    def outbox_collections(self) -> list[Collection]: ...


RelayHandler = Callable[[dict[str, Any], LambdaContext], dict[str, int]]


def make_relay_handler(dependencies: Callable[[], HasOutbox]) -> RelayHandler:
    """A Lambda handler that publishes what a failed or interrupted publish left behind, as
    much as its timeout allows (the outbox reads the time left from the Lambda context)."""
    logger = Logger()

    @logger.inject_lambda_context
    @within_invocation
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
        deps = dependencies()
        published = deps.outbox.relay(deps.outbox_collections())
        logger.info("Outbox relay done", extra={"published": published})
        return {"published": published}

    return handler
