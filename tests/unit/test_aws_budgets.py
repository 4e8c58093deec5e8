"""Every AWS client is built on the shared budgets, and each budget fits inside the function."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.template import load_template
from notifications.mailer import SesMailer
from shop_common import secrets
from shop_common.aws import REPEATABLE, SINGLE_ATTEMPT, CallBudget
from shop_common.mongo import SERVER_SELECTION_TIMEOUT_SECONDS
from shop_common.publisher import SnsPublisher
from shop_common.settings import ServiceSettings

FUNCTION_TIMEOUT = load_template()["Globals"]["Function"]["Timeout"]
SETTINGS = ServiceSettings(service_name="orders", mongodb_database="d", event_topic_arn="arn:aws:sns:eu-west-1:1:t")


def configured_budget(client: Any) -> CallBudget:
    config = client.meta.config
    assert config.retries["mode"] == "standard"
    return CallBudget(config.connect_timeout, config.read_timeout, config.retries["total_max_attempts"])


def test_every_aws_client_is_built_on_a_shared_budget() -> None:
    assert configured_budget(SnsPublisher(SETTINGS)._sns) == REPEATABLE
    assert configured_budget(SesMailer("shop@example.com", None)._ses) == SINGLE_ATTEMPT
    assert configured_budget(secrets.secrets_provider().client) == REPEATABLE


@pytest.mark.parametrize("budget", [REPEATABLE, SINGLE_ATTEMPT], ids=["repeatable", "single attempt"])
def test_a_call_that_times_out_every_attempt_still_leaves_mongodb_its_time(budget: CallBudget) -> None:
    assert budget.worst_case_seconds + SERVER_SELECTION_TIMEOUT_SECONDS < FUNCTION_TIMEOUT


def test_the_worst_case_counts_every_attempt_and_the_backoff_between() -> None:
    assert REPEATABLE.worst_case_seconds == 2 * (1 + 1.5) + 1
    assert SINGLE_ATTEMPT.worst_case_seconds == 1 + 3
    assert CallBudget(1, 1, 3).worst_case_seconds == 3 * 2 + 1 + 2
