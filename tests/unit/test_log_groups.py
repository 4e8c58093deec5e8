"""Each function logs to the group its stack creates, and nothing else can create that group.

A log group named after a function used to be created by the stack after the function, while the
function's role might create it itself (logs:CreateLogGroup): a first invocation racing the stack,
or a log written during `sam delete`, left a group behind, and the next deploy failed with
AlreadyExists. Now every function names its group (LoggingConfig.LogGroup, so the stack creates
the group before the function), the group's name does not depend on the function (no cycle), and
no role may create a log group. Checked on the template as SAM expands it.
"""

from __future__ import annotations

from typing import Any

import pytest

from devstack.template import Resolver
from tests.least_privilege import MANAGED_POLICIES
from tests.sam_translation import translated_template


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    expanded: dict[str, Any] = translated_template()["Resources"]
    return expanded


def of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in role["Properties"].get("Policies", []):
        document = policy["PolicyDocument"]["Statement"]
        found += document if isinstance(document, list) else [document]
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_every_function_logs_to_its_own_group_of_the_stack_with_retention(resources: dict[str, Any]) -> None:
    functions = of_type(resources, "AWS::Lambda::Function")
    groups = of_type(resources, "AWS::Logs::LogGroup")
    resolver = Resolver({"Stage": "dev"})
    bound = []
    for name, function in functions.items():
        properties = function["Properties"]
        reference = properties["LoggingConfig"]["LogGroup"]
        assert set(reference) == {"Ref"}, name
        group = groups[reference["Ref"]]
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}, name
        # Lambda's own default name, so the local runtime's AWS_LAMBDA_LOG_GROUP_NAME matches
        group_name = resolver.resolve(group["Properties"]["LogGroupName"])
        assert group_name == f"/aws/lambda/{resolver.resolve(properties['FunctionName'])}", name
        bound.append(reference["Ref"])
    assert len(bound) == len(set(bound)) == len(functions)


def test_no_role_may_create_a_log_group_and_written_roles_write_only_their_functions_group(
    resources: dict[str, Any],
) -> None:
    boundaries = of_type(resources, "AWS::IAM::ManagedPolicy")
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        role_name = function["Properties"]["Role"]["Fn::GetAtt"][0]
        role = resources[role_name]["Properties"]
        managed = [MANAGED_POLICIES[arn] for arn in role.get("ManagedPolicyArns", [])]
        if any("logs:CreateLogGroup" in actions for actions in managed):
            # AWS's basic execution policy, which SAM gives every role it generates: the boundary takes it away
            boundary = boundaries[role["PermissionsBoundary"]["Ref"]]["Properties"]["PolicyDocument"]
            assert boundary["Statement"] == [
                {
                    "Sid": "AllButCreatingLogGroups",
                    "Effect": "Allow",
                    "NotAction": "logs:CreateLogGroup",
                    "Resource": "*",
                }
            ], name
        logs = [s for s in statements(resources[role_name]) if any(a.startswith("logs:") for a in as_list(s["Action"]))]
        for statement in logs:
            assert sorted(as_list(statement["Action"])) == ["logs:CreateLogStream", "logs:PutLogEvents"], name
            group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            assert statement["Resource"] == {"Fn::GetAtt": [group, "Arn"]}, name
