"""template.yaml for the payments service: its timeouts fit the provider's budget and its lease,
its role reaches only what it owns, its settings come from the template."""

from __future__ import annotations

from typing import Any

import stripe

from devstack.template import load_template
from payments.domain import LEASE
from payments.provider import CALL_RESERVE_SECONDS, STRIPE_BUDGET, ProviderBudget, StripeProvider

TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
EVENTS_FUNCTION = RESOURCES["PaymentsEventsFunction"]["Properties"]
RELAY_FUNCTION = RESOURCES["PaymentsOutboxRelayFunction"]["Properties"]
QUEUE = RESOURCES["PaymentsQueue"]["Properties"]
[TRIGGER] = [event["Properties"] for event in EVENTS_FUNCTION["Events"].values()]


def test_a_stripe_call_that_times_out_every_attempt_still_fits_in_the_function() -> None:
    assert EVENTS_FUNCTION["Timeout"] > CALL_RESERVE_SECONDS


def test_the_lease_outlasts_the_function_and_expires_before_the_message_returns() -> None:
    timeout = EVENTS_FUNCTION["Timeout"]
    assert timeout < LEASE.total_seconds() < QUEUE["VisibilityTimeout"]
    assert QUEUE["VisibilityTimeout"] >= 6 * timeout  # AWS's advice for SQS event sources


def test_the_worst_case_counts_every_attempt_and_stripes_backoff() -> None:
    assert STRIPE_BUDGET.worst_case_seconds == 2 * (2 + 10) + 0.5
    assert ProviderBudget(1, 1, 0).worst_case_seconds == 2
    assert ProviderBudget(1, 1, 3).worst_case_seconds == 4 * 2 + 0.5 + 1 + 2


def test_the_stripe_client_is_built_on_the_budget() -> None:
    provider = StripeProvider.connect("sk_test_x", "http://127.0.0.1:1", lambda: None)
    requestor = provider._intents._requestor
    assert requestor._options.max_network_retries == STRIPE_BUDGET.max_network_retries
    assert requestor._options.base_addresses["api"] == "http://127.0.0.1:1"
    http_client = requestor._client
    assert isinstance(http_client, stripe.RequestsClient)
    assert http_client._timeout == (STRIPE_BUDGET.connect_timeout, STRIPE_BUDGET.read_timeout)


def test_the_consumer_reads_its_key_from_its_own_secret_and_its_currency_from_a_parameter() -> None:
    variables = EVENTS_FUNCTION["Environment"]["Variables"]
    assert variables["STRIPE_SECRET_ID"] == {"Ref": "PaymentsStripeSecret"}
    assert variables["STRIPE_API_BASE"] == ""  # Stripe itself
    assert "STRIPE_API_KEY" not in variables
    assert variables["PAYMENT_CURRENCY"] == {"Ref": "Currency"}
    assert TEMPLATE["Parameters"]["Currency"]["Default"] == "usd"
    assert RESOURCES["PaymentsStripeSecret"]["Type"] == "AWS::SecretsManager::Secret"


def test_only_the_consumer_may_read_the_stripe_key() -> None:
    role = RESOURCES[EVENTS_FUNCTION["Role"]["Fn::GetAtt"][0]]["Properties"]
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    [read] = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
    assert read["Resource"] == [{"Ref": "PaymentsMongoSecret"}, {"Ref": "PaymentsStripeSecret"}]
    assert "STRIPE_SECRET_ID" not in RELAY_FUNCTION["Environment"]["Variables"]
    readers = [
        name
        for name, resource in RESOURCES.items()
        if name != EVENTS_FUNCTION["Role"]["Fn::GetAtt"][0] and "PaymentsStripeSecret" in str(resource)
    ]
    assert readers == ["PaymentsEventsFunction", "PaymentsSweepFunction"]  # each names it in its environment


def test_the_consumer_takes_small_batches_and_reports_failed_records() -> None:
    assert TRIGGER["Queue"] == {"Fn::GetAtt": ["PaymentsQueue", "Arn"]}
    assert TRIGGER["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert TRIGGER["BatchSize"] <= 5
