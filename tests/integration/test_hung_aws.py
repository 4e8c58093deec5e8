"""A hung AWS endpoint costs a bounded wait, never the request: real botocore against a local
socket that accepts connections and never answers."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from pymongo import MongoClient

from devstack.mongod import free_port
from notifications.domain import Email
from notifications.mailer import EmailNotSent, EmailOutcomeUnknown, SesMailer
from shop_common.clock import utc_now
from shop_common.outbox import PendingEvent
from shop_common.publisher import PUBLISH_BUDGET, SnsPublisher
from shop_common.settings import ServiceSettings
from tests.conftest import SENDER, AwsResources
from tests.support import ServiceRuntime, api_event
from users import api as users_api

# Far beyond the shared budget, far below botocore's defaults (60 s read, several attempts):
# a call still running by then is hanging.
GIVE_UP_SECONDS = 30
TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:shop-events"
EMAIL = Email(to="ada@example.com", subject="Hello", body="Hello Ada")


class HungEndpoint:
    """The kernel completes TCP handshakes on a listening socket; nobody ever reads or answers."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def connections(self) -> int:
        """How many connections (so attempts: none is answered to be reused) were made."""
        self._listener.setblocking(False)
        count = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                self._listener.accept()[0].close()
                count += 1
        return count

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def hung() -> Iterator[HungEndpoint]:
    endpoint = HungEndpoint()
    yield endpoint
    endpoint.close()


@dataclass
class Outcome:
    finished: bool
    value: Any = None
    error: BaseException | None = None


def run_bounded(call: Callable[[], Any]) -> Outcome:
    """Run ``call`` in a thread and wait at most GIVE_UP_SECONDS for it."""
    outcome = Outcome(finished=False)

    def target() -> None:
        try:
            outcome.value = call()
        except BaseException as error:
            outcome.error = error
        outcome.finished = True

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(GIVE_UP_SECONDS)
    return outcome


def test_a_publish_to_a_hung_sns_gives_up_after_its_retry_budget(hung: HungEndpoint) -> None:
    settings = ServiceSettings(
        service_name="users", mongodb_database="unused", event_topic_arn=TOPIC_ARN, aws_endpoint_url=hung.url
    )
    event = PendingEvent("e-hung", "UserRegistered", "{}", utc_now())

    outcome = run_bounded(lambda: SnsPublisher(settings).publish([event]))

    assert outcome.finished, "the publish hung instead of giving up within its budget"
    assert isinstance(outcome.error, ReadTimeoutError)
    assert hung.connections() == PUBLISH_BUDGET.max_attempts == 2


def test_an_ses_send_whose_answer_never_comes_is_one_attempt_of_unknown_outcome(hung: HungEndpoint) -> None:
    outcome = run_bounded(lambda: SesMailer(SENDER, hung.url).send(EMAIL))

    assert outcome.finished, "the send hung instead of giving up within its budget"
    assert isinstance(outcome.error, EmailOutcomeUnknown)
    assert isinstance(outcome.error.__cause__, ReadTimeoutError)
    assert hung.connections() == 1  # never repeated by botocore: a repeat could be a second email


def test_an_ses_send_that_cannot_connect_is_definitely_not_sent() -> None:
    outcome = run_bounded(lambda: SesMailer(SENDER, f"http://127.0.0.1:{free_port()}").send(EMAIL))

    assert isinstance(outcome.error, EmailNotSent)
    # Named, not chained: botocore's errors may quote the request, and so the recipient.
    assert str(outcome.error) == f"SES could not be reached: {EndpointConnectionError.__name__}"


def test_a_write_answers_201_while_sns_hangs_and_leaves_its_event_to_the_relay(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, hung: HungEndpoint
) -> None:
    users = runtimes["users"]
    users.env["AWS_ENDPOINT_URL"] = hung.url  # moto passes requests to 127.0.0.1 through

    outcome = run_bounded(lambda: users.http(users_api.handler, api_event("api-users-create")))

    assert outcome.finished, "the request hung on SNS"
    assert outcome.error is None
    assert outcome.value.status == 201
    stored = mongo_client[users.env["MONGODB_DATABASE"]]["users"].find_one({"_id": outcome.value.body["user_id"]})
    assert stored is not None
    assert [entry["event_type"] for entry in stored["pending_events"]] == ["UserRegistered"]
