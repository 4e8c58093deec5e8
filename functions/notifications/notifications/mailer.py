"""Amazon SES, created once per container on first use."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from notifications.domain import Email


class SesMailer:
    def __init__(self, sender: str, endpoint_url: str | None) -> None:
        self.sender = sender
        self._endpoint_url = endpoint_url

    @cached_property
    def _ses(self) -> Any:
        import botocore.session  # not boto3: its session layer adds ~30 ms and nothing used here

        return botocore.session.get_session().create_client("ses", endpoint_url=self._endpoint_url)

    def send(self, email: Email) -> str:
        response = self._ses.send_email(
            Source=self.sender,
            Destination={"ToAddresses": [email.to]},
            Message={
                "Subject": {"Data": email.subject, "Charset": "UTF-8"},
                "Body": {"Text": {"Data": email.body, "Charset": "UTF-8"}},
            },
        )
        return str(response["MessageId"])
