"""What template.yaml and samconfig.toml give the notifications function for a fresh AWS account:
a sender each environment must set (no default anyone could not verify), an alarm on emails SES
refused for good, and a concurrency cap that a new account's quota need not afford."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

from devstack.template import LOCAL_PARAMETERS, Template, load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()
PARAMETERS: dict[str, Any] = TEMPLATE["Parameters"]
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
NOTIFICATIONS = RESOURCES["NotificationsFunction"]["Properties"]
SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
README = (ROOT / "README.md").read_text()


def parameter_overrides(environment: str, command: str) -> dict[str, str]:
    """As SAM CLI reads them: space-separated Key=Value pairs, shell quoting allowed."""
    text = SAMCONFIG[environment][command]["parameters"]["parameter_overrides"]
    return dict(pair.split("=", 1) for pair in shlex.split(text))


def sender_is_valid(value: str) -> bool:
    return re.fullmatch(PARAMETERS["SenderEmail"]["AllowedPattern"], value) is not None


def test_the_sender_has_no_default_and_must_be_an_address() -> None:
    sender = PARAMETERS["SenderEmail"]
    assert "Default" not in sender  # a first deploy without it fails: "Parameters: [SenderEmail] must have values"
    assert sender_is_valid("no-reply@shop.example.com")
    assert not sender_is_valid("")
    assert not sender_is_valid("shop.example.com")
    assert sender["ConstraintDescription"]


OVERRIDES = [
    (environment, command)
    for environment, commands in SAMCONFIG.items()
    if environment != "version"
    for command, section in commands.items()
    if "parameter_overrides" in section["parameters"]
]


@pytest.mark.parametrize(("environment", "command"), OVERRIDES, ids=[f"{e}.{c}" for e, c in OVERRIDES])
def test_each_environment_says_where_its_sender_is_set_and_refuses_to_deploy_until_it_is(
    environment: str, command: str
) -> None:
    """samconfig's parameter_overrides replace the stack's previous values wholesale, so the sender
    stands there, as a placeholder CloudFormation refuses (AllowedPattern) until it is replaced."""
    placeholder = parameter_overrides(environment, command)["SenderEmail"]
    assert not sender_is_valid(placeholder)
    assert f"SenderEmail={placeholder}" in README  # the README says what to put there


def test_environments_deployed_are_configured() -> None:
    assert {("dev", "deploy"), ("prod", "deploy")} <= set(OVERRIDES)


def test_the_local_stack_gives_the_sender_a_value_of_its_own() -> None:
    """The local stack verifies it in moto (devstack/provision.py) and the functions send from it."""
    parameters = Template(TEMPLATE).default_parameters()
    assert parameters["SenderEmail"] == LOCAL_PARAMETERS["SenderEmail"]
    assert sender_is_valid(parameters["SenderEmail"])
    assert [name for name, spec in PARAMETERS.items() if "Default" not in spec] == list(LOCAL_PARAMETERS)


def test_an_email_ses_refused_for_good_raises_an_alarm() -> None:
    """The alarm watches the metric as Powertools emits it (namespace and service from the environment)."""
    source = (ROOT / NOTIFICATIONS["CodeUri"] / "notifications" / "app.py").read_text()
    assert 'name="EmailsRefused"' in source
    alarms = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    [alarm] = [alarm for alarm in alarms if alarm.get("MetricName") == "EmailsRefused"]
    namespace = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Namespace"] == namespace
    service = NOTIFICATIONS["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": service}]
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == ("Sum", 0, "GreaterThanThreshold")
    assert alarm["TreatMissingData"] == "notBreaching"


def test_the_notifications_concurrency_is_capped_only_when_asked() -> None:
    """A fresh account's concurrency quota may be 10, with 100 kept unreserved: no reservation by default."""
    parameter = PARAMETERS["NotificationsReservedConcurrency"]
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 0, 0)
    condition = TEMPLATE["Conditions"]["HasNotificationsReservedConcurrency"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "NotificationsReservedConcurrency"}, "0"]}]}
    assert NOTIFICATIONS["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "HasNotificationsReservedConcurrency",
            {"Ref": "NotificationsReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
