"""SNS-triggered notifications: one email per UserRegistered, OrderConfirmed, OrderRejected and
OrderCancelled event, exactly once per event_id.

SNS invokes Lambda asynchronously: raising makes Lambda retry twice, then the event goes to
the function's dead-letter queue. So every failure here raises: an invalid message (after
logging it), a contact not known yet, a failed SES call.
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
from notifications.domain import Contact, ContactUnknown
from shop_common.clock import utc_now
from shop_common.events import DomainEvent, UserRegistered, parse_event
from shop_common.tracing import make_tracer

logger = Logger()
tracer = make_tracer()
metrics = Metrics()


@tracer.capture_method
def notify(event: domain.NotifiedEvent) -> None:
    deps = dependencies()
    if isinstance(event, UserRegistered):
        contact = Contact(event.data.user_id, event.data.email, event.data.name)
        deps.repository.save_contact(contact)
    else:
        found = deps.repository.contact(event.data.user_id)
        if found is None:
            raise ContactUnknown(f"No contact yet for user {event.data.user_id}")
        contact = found
    email = domain.compose(event, contact)
    event_id = str(event.event_id)
    if not deps.repository.claim(event_id, event.event_type, contact.user_id, email, utc_now()):
        logger.info("Already sent; duplicate delivery ignored")
        return
    try:
        message_id = deps.mailer.send(email)
    except Exception:
        deps.repository.release(event_id)
        raise
    deps.repository.mark_sent(event_id, message_id, utc_now())
    metrics.add_metric(name="EmailsSent", unit=MetricUnit.Count, value=1)
    logger.info("Email sent", extra={"to": email.to, "subject": email.subject})


def _parse(message: str) -> DomainEvent:
    try:
        return parse_event(message)
    except ValidationError:
        logger.exception("Invalid event message; after the retries it goes to the dead-letter queue")
        raise


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    for record in parse(event=event, model=SnsModel).Records:
        domain_event = _parse(str(record.Sns.Message))
        logger.set_correlation_id(domain_event.correlation_id)
        logger.append_keys(event_type=domain_event.event_type, event_id=str(domain_event.event_id))
        if not isinstance(domain_event, domain.NotifiedEvent):
            logger.warning("Ignoring an event this service does not notify about")
            continue
        notify(domain_event)
