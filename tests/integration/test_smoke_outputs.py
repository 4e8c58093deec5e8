"""`make smoke STACK=...` finds what it tests in the deployed stack's CloudFormation outputs (moto's
CloudFormation here), as the deploy workflow runs it after each deploy."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from tools.smoke import SmokeError, deployed_target

OUTPUTS = {
    "ApiUrl": "https://abc123.execute-api.eu-west-1.amazonaws.com/dev",
    "UserPoolId": "eu-west-1_Smoke",
    "UserPoolClientId": "smokeclient123",
}


def create_stack(name: str, outputs: dict[str, str], stage: str = "dev") -> None:
    template = {
        "Parameters": {"Stage": {"Type": "String"}},
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name="eu-west-1").create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "Stage", "ParameterValue": stage}],
    )


def test_the_target_is_the_api_url_user_pool_and_client_of_the_stacks_outputs() -> None:
    with mock_aws():
        create_stack("shop-dev", OUTPUTS)

        target = deployed_target("shop-dev", "eu-west-1")

    assert (target.api_url, target.user_pool_id, target.client_id) == (
        OUTPUTS["ApiUrl"],
        OUTPUTS["UserPoolId"],
        OUTPUTS["UserPoolClientId"],
    )
    assert target.stage == "dev"
    assert target.cognito.meta.region_name == "eu-west-1"  # the users are made in the stack's own region


def test_a_stack_without_an_output_is_one_sentence_naming_it() -> None:
    with mock_aws():
        create_stack("shop-old", {"ApiUrl": OUTPUTS["ApiUrl"]}, stage="prod")

        with pytest.raises(SmokeError, match="shop-old has no output UserPoolId, UserPoolClientId"):
            deployed_target("shop-old", "eu-west-1")


def test_a_stack_that_does_not_exist_is_one_sentence_naming_it() -> None:
    with mock_aws(), pytest.raises(SmokeError, match="no stack shop-nowhere in eu-west-1"):
        deployed_target("shop-nowhere", "eu-west-1")
