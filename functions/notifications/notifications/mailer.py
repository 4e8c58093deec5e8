"""Amazon SES, created once per container on first use: the only module that knows botocore."""

from __future__ import annotations

from typing import Any

from notifications.domain import Email
from shop_common.aws import SINGLE_ATTEMPT, create_client

# botocore never repeats a SendEmail on its own: a repeat after a lost answer would be a
# second email, and after several attempts the last error no longer tells whether one went.
SEND_BUDGET = SINGLE_ATTEMPT


class EmailNotSent(Exception):
    """SES definitely did not send the email (it answered with an error, or the connection
    failed before the request left): sending it again is safe."""


class EmailOutcomeUnknown(Exception):
    """The request may have reached SES (its answer was lost: a read timeout, a connection
    closed after sending, anything unexpected): sending again could send it twice."""


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
        """The SES message id of the sent email; raises EmailNotSent or EmailOutcomeUnknown."""
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
        # SES's error messages may name the recipient (an address it refuses), and what fails the
        # invocation is logged by the runtime with its chain: the error's code or type only.
        except ClientError as error:
            raise EmailNotSent(f"SES refused the email: {error.response['Error'].get('Code')}") from None
        except (EndpointConnectionError, ConnectTimeoutError) as error:
            raise EmailNotSent(f"SES could not be reached: {type(error).__name__}") from None
        except Exception as error:
            raise EmailOutcomeUnknown(f"{type(error).__name__}: {error}") from error
