"""Amazon SES, created once per container on first use: the only module that knows botocore."""

from __future__ import annotations

import random
import re
import time
from typing import Any

from notifications.domain import Email
from shop_common.aws import SINGLE_ATTEMPT, create_client
from shop_common.mongo import SERVER_SELECTION_TIMEOUT_SECONDS
from shop_common.runtime import MONGODB_RESERVE_SECONDS, seconds_left

# botocore never repeats a SendEmail on its own: a repeat after a lost answer would be a
# second email, and after several attempts the last error no longer tells whether one went.
SEND_BUDGET = SINGLE_ATTEMPT

# SendEmail's errors (SES API v1) that no retry can cure: the message or an identity refused
# (MessageRejected: a sender or, in the sandbox, a recipient not verified; an address on the
# global suppression list), the MAIL FROM domain's MX record unreadable, a configuration set
# missing or paused, the account's sending paused (by AWS, for its reputation). Lambda's two
# retries within three minutes would be refused alike, and the event would end in the
# dead-letter queue with nothing recorded.
REFUSALS = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "ConfigurationSetDoesNotExist",
        "ConfigurationSetSendingPausedException",
        "AccountSendingPausedException",
    }
)
# "Maximum sending rate exceeded" (the sandbox allows 1 email/s, production starts at 14/s):
# sent again after a pause with jitter, while the invocation has time; "Daily message quota
# exceeded", also Throttling, is left to Lambda's retries (a pause of seconds cannot cure it).
SENDING_RATE_EXCEEDED = "Maximum sending rate exceeded"
THROTTLED_SEND_ATTEMPTS = 5
FIRST_PAUSE_SECONDS = 0.5
# What a pause must leave in the invocation: one more send at its worst, then recording it.
RESERVE_AFTER_PAUSE_SECONDS = (
    SEND_BUDGET.worst_case_seconds + SERVER_SELECTION_TIMEOUT_SECONDS + MONGODB_RESERVE_SECONDS
)
# An address as SES quotes one: its domain ends on a letter or digit (a sentence's full stop is not part of it).
ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


class EmailNotSent(Exception):
    """SES definitely did not send the email (it answered with an error, or the connection
    failed before the request left): sending it again is safe."""


class EmailOutcomeUnknown(Exception):
    """The request may have reached SES (its answer was lost: a read timeout, a connection
    closed after sending, anything unexpected): sending again could send it twice."""


class EmailRefused(Exception):
    """SES refused the email for a reason no retry can cure; ``reason`` is its error code and
    message with every address replaced (by <sender> or <recipient>)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SesMailer:
    def __init__(self, sender: str, endpoint_url: str | None) -> None:
        self.sender = sender
        self._endpoint_url = endpoint_url

    @property
    def _ses(self) -> Any:  # the container's client, created on first use
        return create_client("ses", self._endpoint_url, SEND_BUDGET)

    def warm_up(self) -> None:
        """Build the SES client now: botocore imported, its model loaded, before a snapshot."""
        self._ses  # noqa: B018 (built on first access)

    def send(self, email: Email) -> str:
        """The SES message id of the sent email; raises EmailRefused, EmailNotSent or EmailOutcomeUnknown.
        A send SES throttled for its rate is attempted again after a growing pause, while the
        invocation has time for it."""
        from botocore.exceptions import ClientError

        pause = FIRST_PAUSE_SECONDS
        for attempt in range(1, THROTTLED_SEND_ATTEMPTS + 1):
            try:
                return self._send_once(email)
            except ClientError as error:
                code, message = error.response["Error"].get("Code", ""), error.response["Error"].get("Message", "")
                if code in REFUSALS:
                    raise EmailRefused(f"{code}: {self._without_addresses(message)}") from None
                jittered = pause * random.uniform(0.5, 1.0)  # concurrent containers do not retry in step
                left = seconds_left()
                out_of_time = left is not None and left < jittered + RESERVE_AFTER_PAUSE_SECONDS
                if SENDING_RATE_EXCEEDED not in message or attempt == THROTTLED_SEND_ATTEMPTS or out_of_time:
                    # SES's error messages may name the recipient, and what fails the invocation
                    # is logged by the runtime with its chain: the error's code only.
                    raise EmailNotSent(f"SES refused the email: {code}") from None
            time.sleep(jittered)
            pause *= 2
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _send_once(self, email: Email) -> str:
        from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

        try:
            response = self._ses.send_email(
                Source=self.sender,
                Destination={"ToAddresses": [email.to]},
                Message={
                    "Subject": {"Data": email.subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": email.body, "Charset": "UTF-8"}},
                },
            )
            return str(response["MessageId"])
        except ClientError:
            raise  # SES answered: send() tells a refusal from a throttle
        except (EndpointConnectionError, ConnectTimeoutError) as error:
            raise EmailNotSent(f"SES could not be reached: {type(error).__name__}") from None
        except Exception as error:
            raise EmailOutcomeUnknown(f"{type(error).__name__}: {error}") from error

    def _without_addresses(self, message: str) -> str:
        """SES's message with the shop's sender and the customer's address named by role only."""
        return ADDRESS.sub(
            lambda found: "<sender>" if found.group(0).lower() == self.sender.lower() else "<recipient>", message
        )
