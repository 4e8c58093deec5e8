"""API Gateway's CloudWatch logging role is a setting of the account in each region, not of a stage.

When every stage's stack set it, stages overwrote each other's setting and a first deploy raced on
it. It is set once per account and region by its own small stack (deploy/account.yaml), deployed
before the first stage: a stage's access logging needs the setting and sets nothing account-wide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devstack.template import load_template

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_TEMPLATE = ROOT / "deploy" / "account.yaml"
PUSH_TO_CLOUDWATCH = "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in template["Resources"].items() if resource["Type"] == kind}


def test_no_stage_sets_anything_account_wide() -> None:
    template = load_template()
    assert of_type(template, "AWS::ApiGateway::Account") == {}
    assert not [name for name in template["Parameters"] if "ApiGatewayCloudWatch" in name]
    # the stage still logs its access: the account's role is a prerequisite (deploy/account.yaml, README)
    (api,) = of_type(template, "AWS::Serverless::Api").values()
    assert "DependsOn" not in api
    assert api["Properties"]["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}


def test_the_account_stack_sets_the_logging_role_once_and_keeps_it() -> None:
    template = load_template(ACCOUNT_TEMPLATE)
    (account,) = of_type(template, "AWS::ApiGateway::Account").values()
    (role_name, role), *others = of_type(template, "AWS::IAM::Role").items()
    assert others == []
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": [role_name, "Arn"]}
    assert role["Properties"]["ManagedPolicyArns"] == [{"Fn::Sub": PUSH_TO_CLOUDWATCH}]
    statement = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement == [
        {"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    # other APIs of the account may log with it: deleting the stack leaves the setting and its role
    for resource in (account, role):
        assert resource["DeletionPolicy"] == "Retain"
        assert resource["UpdateReplacePolicy"] == "Retain"
