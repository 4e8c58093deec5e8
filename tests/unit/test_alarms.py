"""Alarms that reach someone, and deploys that roll back on them (issue 17).

Checked on the template as CloudFormation sees it (expanded by SAM's own translator): every alarm
notifies the alarm topic on ALARM and on OK, names a runbook that exists, and watches a metric that
exists (AWS's, or one the code emits); every function has an errors and a throttles alarm, every
scheduled one a did-not-run alarm; every function deploys through CodeDeploy, shifting traffic as its
stage says and rolling back on its own errors (and, behind the API, the API's 5xx); and alias,
deployment group and alarm form no dependency cycle.
"""

from __future__ import annotations

import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import pytest

from devstack.template import Resolver
from tests.counted_metrics import counted_metric_names
from tests.sam_translation import TEMPLATE_PATH, translated_template, translated_variant

ROOT = Path(__file__).resolve().parents[2]

# Every alarm of the stack: a new or a removed alarm changes this list (and the closing note's).
ALARMS = {
    # dead-letter queues: anything in one needs a human
    "OrdersDeadLetterAlarm",
    "OrdersSubscriptionDeadLetterAlarm",
    "InventoryDeadLetterAlarm",
    "InventorySubscriptionDeadLetterAlarm",
    "PaymentsDeadLetterAlarm",
    "PaymentsSubscriptionDeadLetterAlarm",
    "NotificationsDeadLetterAlarm",
    "NotificationsSubscriptionDeadLetterAlarm",
    # the business
    "EmailOutcomeUnknownAlarm",
    "EmailsRefusedAlarm",
    "OrdersExpiredAlarm",
    "PaymentProviderMisconfiguredAlarm",
    "PaymentFailureRateAlarm",
    "DatabaseUnavailableAlarm",
    # the API
    "ApiServerErrorsAlarm",
    "ApiLatencyAlarm",
    # the main queues' oldest message
    "OrdersQueueAgeAlarm",
    "InventoryQueueAgeAlarm",
    "PaymentsQueueAgeAlarm",
    # each function: errors and throttles; each scheduled one: did it run
    *(
        f"{function}{kind}Alarm"
        for function in (
            "UsersApi",
            "UsersOutboxRelay",
            "OrdersApi",
            "OrdersEvents",
            "OrdersOutboxRelay",
            "OrdersDeadline",
            "InventoryApi",
            "InventoryEvents",
            "InventoryOutboxRelay",
            "PaymentsEvents",
            "PaymentsOutboxRelay",
            "PaymentsSweep",
            "Notifications",
        )
        for kind in ("Errors", "Throttles")
    ),
    *(
        f"{function}NotRunAlarm"
        for function in (
            "UsersOutboxRelay",
            "OrdersOutboxRelay",
            "OrdersDeadline",
            "InventoryOutboxRelay",
            "PaymentsOutboxRelay",
            "PaymentsSweep",
        )
    ),
}
API_FUNCTIONS = {"UsersApiFunction", "OrdersApiFunction", "InventoryApiFunction"}
ROLLBACK_ON_API_ERRORS = "ApiServerErrorsAlarm"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return translated_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    resources: dict[str, Any] = template["Resources"]
    return resources


def of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in resources.items() if r["Type"] == kind}


def functions(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return of_type(resources, "AWS::Lambda::Function")


def function_name(function: dict[str, Any]) -> str:
    """shop-${Stage}-<name>, as the function's FunctionName spells it."""
    name: str = function["FunctionName"]["Fn::Sub"]
    return name


def scheduled(resources: dict[str, Any]) -> set[str]:
    """The functions an EventBridge schedule invokes (through their alias)."""
    aliases = of_type(resources, "AWS::Lambda::Alias")
    return {
        aliases[target["Arn"]["Ref"]]["FunctionName"]["Ref"]
        for rule in of_type(resources, "AWS::Events::Rule").values()
        if "ScheduleExpression" in rule
        for target in rule["Targets"]
    }


def watches_function(alarm: dict[str, Any], metric: str, function: dict[str, Any]) -> bool:
    """The alarm watches ``metric`` of the function by its literal name: no Ref or GetAtt of the
    function or its alias, which would make alias -> deployment group -> alarm a cycle."""
    return (
        alarm.get("Namespace") == "AWS/Lambda"
        and alarm.get("MetricName") == metric
        and alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Fn::Sub": function_name(function)}}]
    )


def test_every_alarm_notifies_the_alarm_topic_on_alarm_and_ok(resources: dict[str, Any]) -> None:
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    assert set(alarms) == ALARMS
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], name
    assert resources["AlarmTopic"]["Type"] == "AWS::SNS::Topic"


def test_every_alarm_names_a_runbook_that_exists(resources: dict[str, Any]) -> None:
    for name, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items():
        runbook = re.search(r"Runbook: (docs/runbooks/[\w-]+\.md)", alarm["AlarmDescription"])
        assert runbook, f"{name} names no runbook"
        assert (ROOT / runbook.group(1)).is_file(), f"{name}: {runbook.group(1)} does not exist"
    assert (ROOT / "docs/runbooks/README.md").is_file()


def test_every_function_has_an_errors_and_a_throttles_alarm(resources: dict[str, Any]) -> None:
    alarms = of_type(resources, "AWS::CloudWatch::Alarm").values()
    for name, function in functions(resources).items():
        for metric in ("Errors", "Throttles"):
            watching = [alarm for alarm in alarms if watches_function(alarm, metric, function)]
            assert len(watching) == 1, f"{name}: {len(watching)} alarms on {metric}"
            assert watching[0]["Statistic"] == "Sum"


def test_every_scheduled_function_raises_an_alarm_when_it_did_not_run(resources: dict[str, Any]) -> None:
    alarms = of_type(resources, "AWS::CloudWatch::Alarm").values()
    all_functions = functions(resources)
    scheduled_functions = scheduled(resources)
    assert len(scheduled_functions) == 6  # the four outbox relays, the orders deadline, the payments sweep
    for name in scheduled_functions:
        [alarm] = [alarm for alarm in alarms if watches_function(alarm, "Invocations", all_functions[name])]
        assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == ("Sum", "LessThanThreshold", 1)
        # no data at all is exactly what a schedule that stopped looks like
        assert alarm["TreatMissingData"] == "breaching"


def metric_names(alarm: dict[str, Any]) -> list[tuple[str, str]]:
    """(namespace, metric name) of every metric the alarm reads, metric math included."""
    if "MetricName" in alarm:
        return [(alarm["Namespace"], alarm["MetricName"])]
    metrics = [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]
    return [(metric["Namespace"], metric["MetricName"]) for metric in metrics]


def test_every_custom_metric_alarm_watches_a_metric_the_code_emits(template: dict[str, Any]) -> None:
    namespace = template["Resources"]["UsersApiFunction"]["Properties"]["Environment"]["Variables"][
        "POWERTOOLS_METRICS_NAMESPACE"
    ]
    watched = {
        metric
        for alarm in of_type(template["Resources"], "AWS::CloudWatch::Alarm").values()
        for space, metric in metric_names(alarm)
        if space == namespace
    }
    assert {"OrdersExpired", "EmailsRefused", "DatabaseUnavailable", "PaymentsFailed"} <= watched
    assert watched - counted_metric_names() == set()


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(resources: dict[str, Any]) -> None:
    """CloudWatch cannot publish to a topic under the AWS managed key alias/aws/sns."""
    topic = resources["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = resources["AlarmTopicKey"]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    [cloudwatch] = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert set(cloudwatch["Action"]) == {"kms:GenerateDataKey*", "kms:Decrypt"}
    [policy] = of_type(resources, "AWS::SNS::TopicPolicy").values()
    assert policy["Topics"] == [{"Ref": "AlarmTopic"}]
    [publish] = policy["PolicyDocument"]["Statement"]
    assert (publish["Principal"], publish["Action"]) == ({"Service": "cloudwatch.amazonaws.com"}, "sns:Publish")
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    # an email subscription only when the AlarmEmail parameter is set
    [subscription] = [r for r in resources.values() if r["Type"] == "AWS::SNS::Subscription" and r.get("Condition")]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}


@pytest.mark.parametrize(
    ("stage", "api_shift", "other_shift"),
    [
        ("dev", "AllAtOnce", "AllAtOnce"),
        ("prod", "Canary10Percent5Minutes", "Linear10PercentEvery1Minute"),
    ],
)
def test_every_function_deploys_through_codedeploy_and_rolls_back_on_its_alarms(
    template: dict[str, Any], stage: str, api_shift: str, other_shift: str
) -> None:
    resources = template["Resources"]
    stage_resolver = Resolver({"Stage": stage}, template["Conditions"])
    groups = of_type(resources, "AWS::CodeDeploy::DeploymentGroup")
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    aliases = of_type(resources, "AWS::Lambda::Alias")
    for name, function in functions(resources).items():
        [alias_name] = [alias for alias, props in aliases.items() if props["FunctionName"] == {"Ref": name}]
        update = resources[alias_name]["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
        group = groups[update["DeploymentGroupName"]["Ref"]]
        expected = api_shift if name in API_FUNCTIONS else other_shift
        assert stage_resolver.resolve(group["DeploymentConfigName"]) == f"CodeDeployDefault.Lambda{expected}", name
        assert group["AutoRollbackConfiguration"]["Enabled"] is True
        assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
        rollback = {alarm["Name"]["Ref"] for alarm in group["AlarmConfiguration"]["Alarms"]}
        [errors] = [a for a, alarm in alarms.items() if watches_function(alarm, "Errors", function)]
        assert rollback == ({errors, ROLLBACK_ON_API_ERRORS} if name in API_FUNCTIONS else {errors}), name


def test_the_api_alarms_watch_the_api_by_the_name_it_is_given(resources: dict[str, Any]) -> None:
    [rest_api] = of_type(resources, "AWS::ApiGateway::RestApi").values()
    assert rest_api["Name"] == {"Fn::Sub": "shop-${Stage}-api"}
    for name in ("ApiServerErrorsAlarm", "ApiLatencyAlarm"):
        alarm = resources[name]["Properties"]
        assert alarm["Namespace"] == "AWS/ApiGateway"
        assert alarm["Dimensions"] == [
            {"Name": "ApiName", "Value": {"Fn::Sub": "shop-${Stage}-api"}},
            {"Name": "Stage", "Value": {"Ref": "Stage"}},
        ]
    assert resources["ApiServerErrorsAlarm"]["Properties"]["Statistic"] == "Average"  # a rate
    assert resources["ApiLatencyAlarm"]["Properties"]["ExtendedStatistic"] == "p99"


def references(node: Any) -> set[str]:
    """The resources and parameters a node refers to (Ref, GetAtt, names inside Sub)."""
    if isinstance(node, list):
        return set().union(*(references(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    if set(node) == {"Ref"}:
        return {node["Ref"]}
    if set(node) == {"Fn::GetAtt"}:
        target = node["Fn::GetAtt"]
        return {target[0] if isinstance(target, list) else target.split(".")[0]}
    if set(node) == {"Fn::Sub"}:
        text, variables = (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]
        named = {name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text)} - set(variables)
        return named | references(variables)
    return set().union(*(references(value) for value in node.values())) if node else set()


def dependency_cycle(resources: dict[str, Any]) -> list[str] | None:
    graph = {
        name: (references(resource) | set(_as_list(resource.get("DependsOn")))) & set(resources)
        for name, resource in resources.items()
    }
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as cycle:
        found: list[str] = cycle.args[1]
        return found
    return None


def test_the_expanded_template_has_no_dependency_cycle(resources: dict[str, Any]) -> None:
    assert dependency_cycle(resources) is None


def test_an_errors_alarm_dimensioned_by_the_alias_would_be_a_cycle() -> None:
    """The check above sees the cycle the literal names avoid: alias -> deployment group -> alarm -> alias."""
    literal = 'Value: !Sub "shop-${Stage}-users-api" }],'
    text = TEMPLATE_PATH.read_text()
    assert text.count(literal) == 2  # its errors and its throttles alarm
    variant = text.replace(literal, "Value: !Ref UsersApiFunction.Alias }],", 1)
    cycle = dependency_cycle(translated_variant(variant)["Resources"])
    assert cycle is not None and {"UsersApiErrorsAlarm", "UsersApiFunctionDeploymentGroup"} <= set(cycle)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
