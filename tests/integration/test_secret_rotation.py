"""A secret rotated while a container is warm: after its max age the container reads it again and,
when its value changed, rebuilds what was made from it (the MongoDB client, the Stripe provider)
and closes the old one; an unchanged value keeps the same client. Time is a clock the test
advances, not a sleep."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
import pytest
from pymongo import MongoClient
from pymongo.errors import InvalidOperation

from payments.provider import StripeProvider
from shop_common import container, secrets
from tests.conftest import AwsResources, LocalStripe
from tests.integration.test_payments import PaymentsRuntime, consume, placed, reserved
from tests.integration.test_snapstart import client_of, register
from tests.support import ServiceRuntime
from users import dependencies as users_dependencies


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """The clock secrets age by, in a container of the test's own (nothing cached before it)."""
    container.release_all()
    clock = Clock()
    monkeypatch.setattr(secrets, "clock", clock, raising=False)
    yield clock
    container.release_all()


def new_secret(value: str) -> str:
    name = f"shop/test/rotation-{uuid.uuid4().hex[:8]}"
    arn: str = boto3.client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]
    return arn


def rotate(secret_arn: str, value: str) -> None:
    boto3.client("secretsmanager").put_secret_value(SecretId=secret_arn, SecretString=value)


def client_in(users: ServiceRuntime) -> MongoClient:
    with mock.patch.dict("os.environ", users.env):
        return client_of(users_dependencies.dependencies())


def test_a_rotated_connection_string_is_read_again_after_its_max_age_and_the_client_rebuilt(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_uri: str, clock: Clock
) -> None:
    secret_arn = new_secret(mongo_uri)
    users = ServiceRuntime({**runtimes["users"].env, "MONGODB_URI": "", "MONGODB_SECRET_ID": secret_arn})
    assert register(users) == 201
    first = client_in(users)

    rotated = f"{mongo_uri}&localThresholdMS=17"  # the same server, told apart by an option of the new value
    rotate(secret_arn, rotated)
    clock.advance(secrets.SECRET_MAX_AGE_SECONDS - 1)
    assert register(users) == 201
    assert client_in(users) is first  # still within its age: not read again

    clock.advance(2)
    assert register(users) == 201  # the next invocation reads it again...
    second = client_in(users)
    assert second is not first  # ...and runs on a client built from the new value
    assert second.options.local_threshold_ms == 17
    with pytest.raises(InvalidOperation, match="after close"):
        first.admin.command("ping")

    clock.advance(secrets.SECRET_MAX_AGE_SECONDS + 1)  # read again, unchanged: the same client
    assert register(users) == 201
    assert client_in(users) is second


def test_a_secret_that_cannot_be_read_again_keeps_the_value_in_use(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_uri: str, clock: Clock
) -> None:
    secret_arn = new_secret(mongo_uri)
    users = ServiceRuntime({**runtimes["users"].env, "MONGODB_URI": "", "MONGODB_SECRET_ID": secret_arn})
    assert register(users) == 201
    first = client_in(users)

    boto3.client("secretsmanager").delete_secret(SecretId=secret_arn, ForceDeleteWithoutRecovery=True)
    clock.advance(secrets.SECRET_MAX_AGE_SECONDS + 1)

    assert register(users) == 201  # Secrets Manager failing is no reason to drop a connection that works
    assert client_in(users) is first


def test_a_rotated_stripe_key_is_read_again_after_its_max_age_and_the_provider_rebuilt(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, localstripe: LocalStripe, clock: Clock
) -> None:
    secret_arn = new_secret("sk_test_before_rotation")
    payments = PaymentsRuntime(
        {**runtimes["payments"].env, "STRIPE_SECRET_ID": secret_arn, "STRIPE_API_BASE": localstripe.url}
    )

    def charge() -> list[str]:
        order_id = str(uuid.uuid4())
        return consume(payments, placed(order_id)) + consume(payments, reserved(order_id))

    connect = StripeProvider.connect
    built: list[tuple[str, StripeProvider]] = []

    def connecting(api_key: str, *args: Any, **kwargs: Any) -> StripeProvider:
        built.append((api_key, connect(api_key, *args, **kwargs)))
        return built[-1][1]

    with (
        mock.patch.object(StripeProvider, "connect", side_effect=connecting),
        mock.patch.object(StripeProvider, "close", autospec=True, side_effect=StripeProvider.close) as close,
    ):
        assert charge() == []
        rotate(secret_arn, "sk_test_after_rotation")
        clock.advance(secrets.SECRET_MAX_AGE_SECONDS + 1)
        assert charge() == []  # the next invocation charges with the new key
        clock.advance(secrets.SECRET_MAX_AGE_SECONDS + 1)  # read again, unchanged: the same provider
        assert charge() == []

    assert [api_key for api_key, _ in built] == ["sk_test_before_rotation", "sk_test_after_rotation"]
    assert [call.args[0] for call in close.call_args_list] == [built[0][1]]
