"""SNS-triggered notifications: one email per UserRegistered, OrderConfirmed, OrderRejected,
OrderCancelled and PaymentRefunded event, at most once per event_id.

SNS invokes Lambda asynchronously: raising makes Lambda retry twice, then the event goes to
the function's dead-letter queue. So a failure raises when a retry can fix it: an invalid
message (after logging it), a contact not known yet, a refunded order whose user is not known
yet (PaymentRefunded names none: the order events that do fill a projection of orders to
users), an email SES definitely did not send (throttled past the invocation's time included).
An email SES refused for a reason no retry cures (an unverified sender, a sandbox recipient...)
is not raised: its notification is recorded FAILED with the reason, logged with the EmailsRefused
metric (alarmed), so a fresh account's refusals do not all end in the dead-letter queue.
An email SES may have sent (its answer lost, or the invocation died mid-send) is never sent
again: its claim stays UNKNOWN, logged with the EmailOutcomeUnknown metric for a human.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SnsModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from notifications import domain
from notifications.dependencies import dependencies
from notifications.domain import Contact, ContactUnknown, OrderOwnerUnknown
from notifications.mailer import EmailNotSent, EmailOutcomeUnknown, EmailRefused
from notifications.repository import Claim
from shop_common import snapstart
from shop_common.clock import utc_now
from shop_common.events import (
    DomainEvent,
    PaymentRefunded,
    UserRegistered,
    claimed_correlation_id,
    parse_event,
    why_invalid,
)
from shop_common.mongo import SERVER_SELECTION_TIMEOUT_SECONDS
from shop_common.runtime import seconds_left, within_invocation
from shop_common.tracing import make_tracer
from shop_common.unavailable import judged_unavailable

logger = Logger()
tracer = make_tracer()
metrics = Metrics()

# Recording SENT is retried in the invocation while a MongoDB write still fits in it: once
# the email is out, no later invocation can record it (nor may it send it again).
RECORD_SENT_ATTEMPTS = 3


@tracer.capture_method
def notify(event: domain.NotifiedEvent) -> None:
    deps = dependencies()
    if isinstance(event, UserRegistered):
        contact = Contact(event.data.user_id, event.data.email, event.data.name)
        deps.repository.save_contact(contact)
    else:
        user_id = _user_of(event)
        found = deps.repository.contact(user_id)
        if found is None:
            raise ContactUnknown(f"No contact yet for user {user_id}")
        contact = found
    email = domain.compose(event, contact)
    event_id = str(event.event_id)
    claim = deps.repository.claim(event_id, event.event_type, contact.user_id, email, utc_now())
    if claim is Claim.ABANDONED:
        _outcome_unknown("An earlier invocation died while sending; the email is not sent again")
    if claim is not Claim.GRANTED:
        logger.info("Already sent, maybe sent or refused; not sent again", extra={"claim": claim.value})
        return
    try:
        message_id = deps.mailer.send(email)
    except EmailRefused as refusal:
        # Not raised: every retry would be refused alike, then dead-lettered with nothing recorded.
        deps.repository.mark_failed(event_id, refusal.reason, utc_now())
        metrics.add_metric(name="EmailsRefused", unit=MetricUnit.Count, value=1)
        logger.error(
            "SES refused the email; recorded as FAILED, not retried",
            extra={"user_id": contact.user_id, "reason": refusal.reason},
        )
        return
    except EmailNotSent:
        deps.repository.release(event_id)
        raise
    except EmailOutcomeUnknown as error:
        # Not raised: a retry could only find the claim and skip, or, had it not been kept, resend.
        _outcome_unknown(f"SES may have sent the email ({error}); it is not sent again")
        deps.repository.mark_unknown(event_id, str(error), utc_now())
        return
    metrics.add_metric(name="EmailsSent", unit=MetricUnit.Count, value=1)
    # Ids only: the address, and the name in the text, are the customer's own (event_type is logged already).
    logger.info("Email sent", extra={"user_id": contact.user_id, "message_id": message_id})
    _record_sent(event_id, message_id)


def _user_of(event: domain.OrderEvent | PaymentRefunded) -> str:
    """The user an order's event concerns: named by the order events, which are remembered for
    the refund that may follow; looked up for the refund."""
    repository = dependencies().repository
    if isinstance(event, PaymentRefunded):
        owner = repository.owner_of(event.data.order_id)
        if owner is None:
            raise OrderOwnerUnknown(f"No user known yet for order {event.data.order_id}")
        return owner
    repository.remember_owner(event.data.order_id, event.data.user_id)
    return event.data.user_id


def _record_sent(event_id: str, message_id: str) -> None:
    repository = dependencies().repository
    for attempt in range(1, RECORD_SENT_ATTEMPTS + 1):
        try:
            repository.mark_sent(event_id, message_id, utc_now())
            return
        except Exception:
            logger.exception("Could not record the email as sent", extra={"attempt": attempt})
        left = seconds_left()
        if left is not None and left < SERVER_SELECTION_TIMEOUT_SECONDS + 1:
            break
    # Its claim stays SENDING and turns UNKNOWN when stale: no retry ever sends it again.
    _outcome_unknown("Email sent but not recorded as sent; it is not sent again")


def _outcome_unknown(message: str) -> None:
    logger.error(message)
    metrics.add_metric(name="EmailOutcomeUnknown", unit=MetricUnit.Count, value=1)


class InvalidEventMessage(ValueError):
    """An SNS message that is not a valid event: where and why, never its content."""


def _parse(message: str) -> DomainEvent:
    try:
        return parse_event(message)
    except ValidationError as invalid:
        errors = why_invalid(invalid)
        logger.set_correlation_id(claimed_correlation_id(message))
        logger.error(
            "Invalid event message; after the retries it goes to the dead-letter queue", extra={"errors": errors}
        )
        # Not pydantic's error, which quotes the input: the runtime logs what fails the invocation.
        why = "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in errors)
        raise InvalidEventMessage(f"Not a valid event: {why}") from None


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@within_invocation
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    for record in parse(event=event, model=SnsModel).Records:
        logger.remove_keys(["event_type", "event_id"])  # nothing of the flow the container handled last
        logger.set_correlation_id(None)
        domain_event = _parse(str(record.Sns.Message))
        logger.set_correlation_id(domain_event.correlation_id)
        logger.append_keys(event_type=domain_event.event_type, event_id=str(domain_event.event_id))
        if not isinstance(domain_event, domain.NotifiedEvent):
            logger.warning("Ignoring an event this service does not notify about")
            continue
        try:
            notify(domain_event)
        except Exception as error:
            judged_unavailable(error)  # an outage is counted (Lambda retries the event either way)
            raise


snapstart.prepare(dependencies)
