"""`make smoke STACK=...` against AWS (moto here): it finds what it tests in the deployed stack's
CloudFormation outputs, as the deploy workflow runs it after each deploy, and leaves no throwaway user
in the pool, not even those of a run that was killed."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest
from moto import mock_aws

from tools.smoke import Report, SmokeError, Target, ThrowawayUsers, deployed_target

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


def test_deleting_the_throwaway_users_deletes_those_a_killed_run_left_too_and_no_one_else() -> None:
    with mock_aws():
        cognito = boto3.client("cognito-idp", region_name="eu-west-1")
        pool_id = cognito.create_user_pool(PoolName="shop-test-users", UsernameAttributes=["email"])["UserPool"]["Id"]
        client_id = cognito.create_user_pool_client(
            UserPoolId=pool_id, ClientName="shop-test-clients", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
        )["UserPoolClient"]["ClientId"]
        target = Target("http://127.0.0.1:9", pool_id, client_id, cognito, stage="dev")
        ThrowawayUsers(target, Report()).sign_in()  # a run killed before its finally
        cognito.admin_create_user(UserPoolId=pool_id, Username="ada@example.com", MessageAction="SUPPRESS")
        this_run = ThrowawayUsers(target, Report())
        this_run.sign_in(), this_run.sign_in()

        said = this_run.delete_all(stale_after=timedelta(0))

        left = cognito.list_users(UserPoolId=pool_id)["Users"]
        assert [a["Value"] for user in left for a in user["Attributes"] if a["Name"] == "email"] == ["ada@example.com"]
        assert said == "throwaway users deleted: 2, and 1 left by a run that was interrupted"
