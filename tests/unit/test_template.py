"""template.yaml properties the linters do not check (facts.md): runtime, batch failure
reporting, redrive, visibility, filter policies, least privilege, alarms, handler paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"}
QUEUES = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::SQS::Queue"}
GLOBALS = TEMPLATE["Globals"]["Function"]


def sqs_events() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, event["Properties"])
        for name, props in FUNCTIONS.items()
        for event in props.get("Events", {}).values()
        if event["Type"] == "SQS"
    ]


def test_runtime_and_architecture() -> None:
    assert GLOBALS["Runtime"] == "python3.11"
    assert GLOBALS["Architectures"] == ["arm64"]
    assert all("Runtime" not in props and "Architectures" not in props for props in FUNCTIONS.values())


def test_every_sqs_trigger_reports_batch_item_failures() -> None:
    assert len(sqs_events()) == 2
    for _, event in sqs_events():
        assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert 1 <= event["BatchSize"] <= 10


def test_source_queues_redrive_to_a_dead_letter_queue_and_outlast_the_function() -> None:
    source_queues = [name for name, props in QUEUES.items() if "RedrivePolicy" in props]
    assert sorted(source_queues) == ["InventoryQueue", "OrdersQueue"]
    for name in source_queues:
        redrive = QUEUES[name]["RedrivePolicy"]
        assert redrive["maxReceiveCount"] == 5
        target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert target in QUEUES
        assert "RedrivePolicy" not in QUEUES[target]
        assert QUEUES[name]["VisibilityTimeout"] >= 6 * GLOBALS["Timeout"]


CONTRACT_FILTERS = {
    "OrdersQueue": ["InventoryReserved", "InventoryRejected", "UserRegistered"],
    "InventoryQueue": ["OrderPlaced", "OrderCancelled"],
}


def test_queue_subscriptions_filter_as_the_contract_says() -> None:
    subscriptions = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::SNS::Subscription"]
    by_queue = {sub["Endpoint"]["Fn::GetAtt"][0]: sub for sub in subscriptions}
    assert sorted(by_queue) == sorted(CONTRACT_FILTERS)
    for queue, event_types in CONTRACT_FILTERS.items():
        assert sorted(by_queue[queue]["FilterPolicy"]["event_type"]) == sorted(event_types)
        assert by_queue[queue]["FilterPolicyScope"] == "MessageAttributes"
        assert by_queue[queue]["RawMessageDelivery"] is True


def test_notifications_subscription_dead_letters_and_retries() -> None:
    notifications = FUNCTIONS["NotificationsFunction"]
    [event] = notifications["Events"].values()
    assert event["Type"] == "SNS"
    expected = ["OrderCancelled", "OrderConfirmed", "OrderRejected", "UserRegistered"]
    assert sorted(event["Properties"]["FilterPolicy"]["event_type"]) == expected
    assert event["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] in QUEUES
    assert notifications["DeadLetterQueue"]["TargetArn"]["Fn::GetAtt"][0] in QUEUES
    assert notifications["EventInvokeConfig"]["MaximumRetryAttempts"] == 2


def _actions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["Action"]] if isinstance(node.get("Action"), str) else list(node.get("Action", []))
        return found + [action for value in node.values() for action in _actions(value)]
    if isinstance(node, list):
        return [action for value in node for action in _actions(value)]
    return []


def test_no_wildcard_actions() -> None:
    actions = _actions(RESOURCES)
    assert actions  # the inline statements are found
    assert not [action for action in actions if "*" in action]


def test_every_dead_letter_queue_has_an_alarm() -> None:
    dead_letter_queues = {name for name in QUEUES if "DeadLetter" in name}
    alarmed = {
        r["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert len(dead_letter_queues) == 4
    assert alarmed == dead_letter_queues


def test_connection_strings_are_secrets_not_parameters() -> None:
    assert not [name for name in TEMPLATE["Parameters"] if "mongo" in name.lower() or "uri" in name.lower()]
    for name, props in FUNCTIONS.items():
        variables = props["Environment"]["Variables"]
        assert "MONGODB_URI" not in variables, name
        secret = variables["MONGODB_SECRET_ID"]["Ref"]
        assert RESOURCES[secret]["Type"] == "AWS::SecretsManager::Secret"


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_handler_module_exists(function: str) -> None:
    props = FUNCTIONS[function]
    module, _, attribute = props["Handler"].rpartition(".")
    path = ROOT / props["CodeUri"] / (module.replace(".", "/") + ".py")
    assert path.is_file(), path
    assert f"{attribute} =" in path.read_text() or f"def {attribute}(" in path.read_text()
