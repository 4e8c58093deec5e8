"""When an SQS record comes back after a dependency failed: later and later, not at every
visibility timeout, so that an outage spends few of its receives toward the dead-letter queue.

A record whose work waits on something down or busy (MongoDB, a payment provider, a lease held
by another invocation) extends its message's visibility with an exponential backoff. Work that
its service has recorded and resumes by itself (a scheduled sweep) is let go at its last
receive instead of being dead-lettered: a dead-letter queue holds only what can never succeed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from shop_common.aws import REPEATABLE, create_client
from shop_common.container import per_container
from shop_common.settings import ServiceSettings
from shop_common.unavailable import judged_unavailable

logger = Logger(child=True)

# ChangeMessageVisibility takes at most 12 hours; a few hours between tries is patient enough.
MAX_DELAY_SECONDS = 4 * 3600


class RetryLater(Exception):
    """The record's work waits on a dependency that is down or busy.

    ``resumed_by_owner``: the service has recorded what is left to do and resumes it itself, so
    the message may go once its receives run out. ``not_before_seconds``: it cannot succeed
    sooner (another invocation's lease runs that long).
    """

    def __init__(self, reason: str, *, resumed_by_owner: bool = False, not_before_seconds: float = 0) -> None:
        super().__init__(reason)
        self.resumed_by_owner = resumed_by_owner
        self.not_before_seconds = not_before_seconds


def waits_on_dependency(error: BaseException) -> bool:
    """Whether ``error`` says a dependency is down or busy, rather than that the record is wrong:
    what the API answers 503 for (counted alike), and what asks to be retried later."""
    return judged_unavailable(error) or isinstance(error, RetryLater)


@dataclass(frozen=True)
class QueueSettings:
    visibility_timeout: int
    max_receive_count: int | None  # None: the queue has no dead-letter queue


@dataclass(frozen=True)
class Redelivery:
    """What becomes of a failed record: let go (its owner resumes the work), or back after ``delay``."""

    let_go: bool
    delay_seconds: int


def plan(receives: int, queue: QueueSettings, error: BaseException) -> Redelivery:
    """Pure: the record's ``receives``-th receive failed with ``error``, which waits on a dependency."""
    owned = isinstance(error, RetryLater) and error.resumed_by_owner
    if owned and queue.max_receive_count is not None and receives >= queue.max_receive_count:
        return Redelivery(let_go=True, delay_seconds=0)
    not_before = error.not_before_seconds if isinstance(error, RetryLater) else 0
    backoff = queue.visibility_timeout * 2 ** min(receives, 16)
    return Redelivery(let_go=False, delay_seconds=int(min(max(backoff, not_before), MAX_DELAY_SECONDS)))


def queue_url(queue_arn: str) -> str:
    """The queue's URL from its ARN (arn:aws:sqs:region:account:name), in SQS's documented form."""
    _, partition, _, region, account, name = queue_arn.split(":", 5)
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{name}"


def _sqs() -> Any:
    return create_client("sqs", ServiceSettings.from_env().aws_endpoint_url, REPEATABLE)


@per_container
def queue_settings(queue_arn: str) -> QueueSettings:
    """The queue's visibility timeout and maxReceiveCount, read once per container."""
    attributes = _sqs().get_queue_attributes(
        QueueUrl=queue_url(queue_arn), AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
    )["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"]) if attributes.get("RedrivePolicy") else {}
    max_receives = redrive.get("maxReceiveCount")
    return QueueSettings(int(attributes["VisibilityTimeout"]), int(max_receives) if max_receives else None)


def back_off(queue_arn: str, receipt_handle: str, receives: int, error: BaseException) -> bool:
    """Extend a failed record's visibility by its backoff; True if the record is to be let go
    instead (its owner resumes the work). A failure here leaves the queue's own timeout."""
    try:
        redelivery = plan(receives, queue_settings(queue_arn), error)
        if redelivery.let_go:
            logger.warning("Receives used up; the service resumes this work itself", extra={"receives": receives})
            return True
        _sqs().change_message_visibility(
            QueueUrl=queue_url(queue_arn), ReceiptHandle=receipt_handle, VisibilityTimeout=redelivery.delay_seconds
        )
        logger.info("Record returns later", extra={"receives": receives, "delay_seconds": redelivery.delay_seconds})
    except Exception:
        logger.exception("Could not delay the record; it returns after the queue's visibility timeout")
    return False
