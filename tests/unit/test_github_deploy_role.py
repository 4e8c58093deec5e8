"""deploy/github-deploy.yaml: the roles GitHub Actions assumes through OIDC trust one environment of one
repository, and the deploy role can only hand the stack to CloudFormation's execution role."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from devstack.template import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "github-deploy.yaml"
ISSUER = "token.actions.githubusercontent.com"
PROVIDER = {"Fn::If": ["CreateOidcProvider", {"Ref": "GitHubOidcProvider"}, {"Ref": "OidcProviderArn"}]}
# where no resource can be named (the statement's comment in the template says why)
UNNAMED_RESOURCE_ACTIONS = {
    "cloudformation:GetTemplateSummary",
    "logs:DescribeLogGroups",
    "cognito-idp:CreateUserPool",
    "lambda:CreateEventSourceMapping",
    "lambda:UpdateEventSourceMapping",
    "lambda:DeleteEventSourceMapping",
    "lambda:GetEventSourceMapping",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement for policy in role["Properties"]["Policies"] for statement in policy["PolicyDocument"]["Statement"]
    ]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize(("role", "environment"), [("DeployRole", "${Stage}"), ("SmokeTestRole", "${Stage}-smoke")])
def test_a_github_role_trusts_one_environment_of_one_repository(
    template: dict[str, Any], role: str, environment: str
) -> None:
    (trust,) = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Effect"] == "Allow"
    assert trust["Principal"] == {"Federated": PROVIDER}
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    # exact matches only: a StringLike with a wildcard would admit branches, pull requests or other repositories
    assert trust["Condition"] == {
        "StringEquals": {
            f"{ISSUER}:aud": "sts.amazonaws.com",
            f"{ISSUER}:sub": {"Fn::Sub": f"repo:${{GitHubRepository}}:environment:{environment}"},
        }
    }


def test_the_repository_and_stage_admit_no_wildcard(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    pattern = re.compile(parameters["GitHubRepository"]["AllowedPattern"])
    assert pattern.fullmatch("octo-org/shop")
    for wildcard in ("octo-org/*", "*", "octo-org/shop:*", "octo-org/shop/extra"):
        assert not pattern.fullmatch(wildcard), wildcard
    assert parameters["Stage"]["AllowedValues"] == ["dev", "prod"]


def test_githubs_provider_is_created_unless_the_account_has_one(template: dict[str, Any]) -> None:
    provider = template["Resources"]["GitHubOidcProvider"]
    assert provider["Condition"] == "CreateOidcProvider"
    assert template["Conditions"]["CreateOidcProvider"] == {"Fn::Equals": [{"Ref": "OidcProviderArn"}, ""]}
    assert provider["Properties"] == {"Url": f"https://{ISSUER}", "ClientIdList": ["sts.amazonaws.com"]}


def test_the_deploy_role_changes_only_its_stage_and_creates_nothing_itself(template: dict[str, Any]) -> None:
    deploy = statements(template["Resources"]["DeployRole"])
    cloudformation = [s for s in deploy if any(a.startswith("cloudformation:") for a in as_list(s["Action"]))]
    named = [resource["Fn::Sub"] for s in cloudformation for resource in as_list(s["Resource"]) if resource != "*"]
    assert sorted(named) == [
        "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/aws-sam-cli-managed-default/*",
        "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/shop-${Stage}/*",
        "arn:${AWS::Partition}:cloudformation:${AWS::Region}:aws:transform/Serverless-2016-10-31",
    ]
    (pass_role,) = [s for s in deploy if "iam:PassRole" in as_list(s["Action"])]
    assert pass_role == {
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": {"Fn::GetAtt": ["CloudFormationExecutionRole", "Arn"]},
        "Condition": {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
    }
    services = {action.split(":")[0] for s in deploy for action in as_list(s["Action"])}
    assert services == {"cloudformation", "iam", "s3"}  # the stack's resources come from the execution role


def test_only_cloudformation_assumes_the_execution_role(template: dict[str, Any]) -> None:
    role = template["Resources"]["CloudFormationExecutionRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "cloudformation.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_every_unscoped_resource_is_one_that_cannot_be_named(template: dict[str, Any]) -> None:
    unscoped = set()
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for statement in statements(resource):
            assert "NotAction" not in statement and "NotResource" not in statement, name
            if "*" in as_list(statement["Resource"]):
                unscoped |= {(name, action) for action in as_list(statement["Action"])}
    kms = {action for name, action in unscoped if action.startswith("kms:")}
    assert {name for name, action in unscoped if action.startswith("kms:")} <= {"CloudFormationExecutionRole"}
    assert kms >= {"kms:CreateKey"} and "kms:*" not in kms and "kms:Decrypt" not in kms
    assert {action for _, action in unscoped} - kms <= UNNAMED_RESOURCE_ACTIONS
    # an event source mapping is bounded by the stage's functions it maps to
    execution = statements(template["Resources"]["CloudFormationExecutionRole"])
    (mapping,) = [s for s in execution if "lambda:CreateEventSourceMapping" in as_list(s["Action"])]
    assert mapping["Condition"]["ArnLike"]["lambda:FunctionArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:shop-${Stage}-*"
    }


def test_the_execution_role_writes_roles_of_its_stage_only(template: dict[str, Any]) -> None:
    execution = statements(template["Resources"]["CloudFormationExecutionRole"])
    iam = [s for s in execution if any(a.startswith("iam:") for a in as_list(s["Action"]))]
    resources = sorted(resource["Fn::Sub"] for s in iam for resource in as_list(s["Resource"]))
    assert resources == [
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/shop-${Stage}-*",
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/shop-${Stage}-*",
    ]


def aws_calls(source: Path, client: str) -> set[str]:
    """The API actions a module calls on its ``client`` (``<client>.some_call(``, ``get_paginator("some_call")``),
    as IAM names them (SomeCall)."""
    text = source.read_text()
    calls = set(re.findall(rf"\b{client}\.(?!get_paginator)([a-z_]+)\(", text))
    calls |= set(re.findall(rf'\b{client}\.get_paginator\(\s*"([a-z_]+)"', text))
    return {"".join(word.capitalize() for word in call.split("_")) for call in calls}


def test_the_smoke_test_role_grants_exactly_the_calls_the_smoke_test_makes(template: dict[str, Any]) -> None:
    granted = {
        action
        for statement in statements(template["Resources"]["SmokeTestRole"])
        for action in as_list(statement["Action"])
    }
    smoke = Path(__file__).resolve().parents[2] / "tools"
    called = {f"cloudformation:{call}" for call in aws_calls(smoke / "smoke.py", "cloudformation")}
    called |= {f"cognito-idp:{call}" for source in smoke.glob("*.py") for call in aws_calls(source, "cognito")}
    # initiate_auth (USER_PASSWORD_AUTH) is unauthenticated: the app client, not IAM, allows it
    assert granted == called - {"cognito-idp:InitiateAuth"}
