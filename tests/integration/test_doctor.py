"""The doctor against moto, with the stack's resources provisioned from template.yaml and each
fault an operator meets after a deploy planted in turn."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from devstack.doctor import (
    Finding,
    StackView,
    check_alarm_topics,
    deployed_view,
    examine,
    local_view,
    run_doctor,
)
from devstack.mongod import free_port
from devstack.provision import provision
from devstack.template import REGION, Template, load_template

STAFF_EMAIL = "grace@example.com"
PLACEHOLDERS = {
    name: props["SecretString"]
    for name, props in Template(load_template()).of_type("AWS::SecretsManager::Secret").items()
}
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
# A short server selection for the cluster planted unreachable: the doctor's verdict, not its patience, is tested.
SHORT_MS = 300


class InventoryApi(BaseHTTPRequestHandler):
    """Answers every GET with the status the test sets, as the inventory API would for an unknown sku."""

    status = 404

    def do_GET(self) -> None:
        body = json.dumps({"error": "not_found", "message": "No product has that sku."}).encode()
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@dataclass
class Planted:
    view: StackView
    server: ThreadingHTTPServer
    mongo_uri: str

    def put_secret(self, name: str, value: str) -> None:
        boto3.client("secretsmanager").put_secret_value(SecretId=self.view.secrets[name], SecretString=value)

    def problems(self, connect: bool = True) -> list[Finding]:
        return [finding for finding in examine(self.view, connect=connect, timeout_ms=SHORT_MS) if not finding.ok]


@pytest.fixture
def stack(mongo_uri: str) -> Iterator[Planted]:
    """A healthy dev stack: every secret set (the connection strings reach the test's mongod), a
    verified sender, a staff member, an alarm topic someone subscribed to, an API that answers."""
    with mock_aws():
        provisioned = provision(Template(load_template()), None, mongo_uri, prefix="shop-doctor", fast=False)
        pool_id = provisioned.user_pools["UserPool"]["id"]
        cognito = boto3.client("cognito-idp")
        cognito.admin_create_user(UserPoolId=pool_id, Username=STAFF_EMAIL)
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=STAFF_EMAIL, GroupName="staff")
        sns = boto3.client("sns")
        alarm_topic = sns.create_topic(Name="shop-doctor-alarms")["TopicArn"]
        sns.subscribe(TopicArn=alarm_topic, Protocol="email", Endpoint="oncall@example.com")
        server = ThreadingHTTPServer(("127.0.0.1", 0), InventoryApi)
        server.status = 404  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        view = StackView(
            stage="dev",
            secrets=provisioned.secrets,
            sender=provisioned.sender_identities[0],
            user_pool_id=pool_id,
            api_url=f"http://127.0.0.1:{server.server_port}/dev",
            alarm_topic_arns=(alarm_topic,),
            alarm_count=3,
            region=REGION,
        )
        yield Planted(view, server, mongo_uri)
        server.shutdown()
        server.server_close()


def only_problem(planted: Planted, connect: bool = True) -> Finding:
    problems = planted.problems(connect)
    assert len(problems) == 1, problems
    return problems[0]


def test_a_healthy_stack_passes_every_check_and_prints_no_secret_or_address(
    stack: Planted, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_doctor(stack.view, connect=True, timeout_ms=SHORT_MS) == 0

    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert all(line.startswith("OK") for line in lines[:-1]), printed
    # one line per secret, one per connection string reached, the Stripe key, SES twice, alarms, staff, API
    assert len(lines[:-1]) == 6 + 5 + 1 + 2 + 1 + 1 + 1
    assert stack.mongo_uri not in printed and "sk_test_" not in printed.replace("sk_test_...", "")
    assert not EMAIL.search(printed), printed


@pytest.mark.parametrize("name", ["OrdersMongoSecret", "PaymentsStripeSecret"])
def test_a_secret_that_still_holds_the_template_placeholder(stack: Planted, name: str) -> None:
    stack.put_secret(name, PLACEHOLDERS[name])

    problem = only_problem(stack)

    assert name in problem.what and "placeholder" in problem.what
    assert "put-secret-value" in problem.fix and PLACEHOLDERS[name] not in problem.what + problem.fix


def test_an_empty_secret(stack: Planted) -> None:
    stack.put_secret("UsersMongoSecret", " ")

    problem = only_problem(stack)

    assert "UsersMongoSecret" in problem.what and "empty" in problem.what


def test_a_connection_string_that_reaches_no_cluster(stack: Planted) -> None:
    unreachable = f"mongodb://shop:s3cret-pass@127.0.0.1:{free_port()}/?directConnection=true"
    stack.put_secret("InventoryMongoSecret", unreachable)

    problem = only_problem(stack)

    assert "InventoryMongoSecret" in problem.what and "Network Access" in problem.fix
    assert "s3cret-pass" not in problem.what + problem.fix
    # from a machine outside the cluster's access list, the operator skips the connection
    assert stack.problems(connect=False) == []


def test_a_connection_string_that_does_not_parse(stack: Planted) -> None:
    stack.put_secret("NotificationsMongoSecret", "https://shop:s3cret-pass@cluster0.example.net")

    problem = only_problem(stack, connect=False)

    assert "NotificationsMongoSecret" in problem.what and "not a MongoDB connection string" in problem.what
    assert "s3cret-pass" not in problem.what + problem.fix


def test_a_live_stripe_key_on_dev(stack: Planted) -> None:
    stack.put_secret("PaymentsStripeSecret", "sk_live_51Habcdef")

    problem = only_problem(stack)

    assert "live" in problem.what and "dev" in problem.what and "sk_live_51H" not in problem.what + problem.fix


def test_a_test_stripe_key_on_prod_and_a_restricted_live_key_accepted(stack: Planted) -> None:
    stack.view = replace(stack.view, stage="prod")
    stack.put_secret("PaymentsStripeSecret", "sk_test_51Habcdef")
    problems = stack.problems()
    assert any("PaymentsStripeSecret" in p.what and "test" in p.what for p in problems), problems

    stack.put_secret("PaymentsStripeSecret", "rk_live_51Habcdef")
    assert not any("PaymentsStripeSecret" in p.what for p in stack.problems())


def test_an_unverified_sender(stack: Planted) -> None:
    stack.view = replace(stack.view, sender="orders@unverified.example.org")

    problem = only_problem(stack)

    assert "SenderEmail" in problem.what and "not a verified" in problem.what and "verify-email-identity" in problem.fix
    assert "unverified.example.org" not in problem.what + problem.fix


def test_the_ses_sandbox_is_a_problem_on_prod_only(stack: Planted) -> None:
    # moto's account sends 200 a day: the sandbox's quota
    assert stack.problems() == []

    stack.view = replace(stack.view, stage="prod")
    stack.put_secret("PaymentsStripeSecret", "sk_live_51Habcdef")

    problem = only_problem(stack)
    assert "sandbox" in problem.what and "production access" in problem.fix


def test_a_user_pool_without_staff(stack: Planted) -> None:
    boto3.client("cognito-idp").admin_remove_user_from_group(
        UserPoolId=stack.view.user_pool_id, Username=STAFF_EMAIL, GroupName="staff"
    )

    problem = only_problem(stack)

    assert "staff" in problem.what and "admin-add-user-to-group" in problem.fix


def test_a_user_pool_that_does_not_exist(stack: Planted) -> None:
    stack.view = replace(stack.view, user_pool_id="eu-west-1_Missing00")

    problem = only_problem(stack)

    assert "eu-west-1_Missing00" in problem.what and "does not exist" in problem.what


def test_alarms_that_reach_no_one(stack: Planted) -> None:
    stack.view = replace(stack.view, alarm_topic_arns=())

    problem = only_problem(stack)

    assert "reach no one" in problem.what and "AlarmActions" in problem.fix


def test_an_alarm_topic_nobody_subscribed_to(stack: Planted) -> None:
    stack.view = replace(stack.view, alarm_topic_arns=(boto3.client("sns").create_topic(Name="unheard")["TopicArn"],))

    problem = only_problem(stack)

    assert "unheard" in problem.what and "no confirmed subscription" in problem.what and "sns subscribe" in problem.fix


def test_an_api_answering_502(stack: Planted) -> None:
    stack.server.status = 502  # type: ignore[attr-defined]

    problem = only_problem(stack)

    assert "/inventory/" in problem.what and "502" in problem.what


def test_an_api_refusing_connections(stack: Planted) -> None:
    stack.view = replace(stack.view, api_url=f"http://127.0.0.1:{free_port()}/dev")

    problem = only_problem(stack)

    assert "/inventory/" in problem.what and "no answer" in problem.what


def test_any_problem_makes_the_exit_status_non_zero(stack: Planted, capsys: pytest.CaptureFixture[str]) -> None:
    stack.put_secret("UsersMongoSecret", PLACEHOLDERS["UsersMongoSecret"])

    assert run_doctor(stack.view, connect=False, timeout_ms=SHORT_MS) == 1

    problems = [line for line in capsys.readouterr().out.splitlines() if line.startswith("PROBLEM")]
    assert len(problems) == 1 and "UsersMongoSecret" in problems[0]


def test_the_local_stack_is_seen_from_its_stack_json() -> None:
    described = {
        "api_url": "http://127.0.0.1:3000",
        "aws_endpoint_url": "http://127.0.0.1:5000",
        "region": REGION,
        "topics": {
            "ShopEventsTopic": "arn:aws:sns:eu-west-1:123456789012:shop-local-events",
            "AlarmTopic": "arn:aws:sns:eu-west-1:123456789012:shop-local-alarms",
        },
        "secrets": {"UsersMongoSecret": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/dev/users"},
        "user_pool_id": "eu-west-1_Local0001",
        "sender_identities": ["no-reply@example.com"],
    }

    view = local_view(described)

    assert (view.stage, view.api_url, view.user_pool_id, view.endpoint_url) == (
        "dev",
        "http://127.0.0.1:3000",
        "eu-west-1_Local0001",
        "http://127.0.0.1:5000",
    )
    assert view.secrets == described["secrets"] and view.sender == "no-reply@example.com"
    # the template's alarms notify the alarm topic, which the local stack provisions
    assert view.alarm_topic_arns == ("arn:aws:sns:eu-west-1:123456789012:shop-local-alarms",)
    assert view.alarm_count > 0


@pytest.mark.parametrize("alarm_email", ["", "oncall@example.com"])
def test_the_local_stack_provisions_the_alarm_topic_and_the_doctor_reports_it(mongo_uri: str, alarm_email: str) -> None:
    """The alarm topic provisions from the template (moto keeps no key for it: nothing local reads
    encryption); its email subscription only when the AlarmEmail parameter is set (Condition HasAlarmEmail)."""
    template = Template(load_template())
    template.document["Parameters"]["AlarmEmail"]["Default"] = alarm_email
    with mock_aws():
        provisioned = provision(template, None, mongo_uri, prefix="shop-local", fast=False)
        alarm_topic = provisioned.topic_arns["AlarmTopic"]
        subscriptions = boto3.client("sns").list_subscriptions_by_topic(TopicArn=alarm_topic)["Subscriptions"]
        assert [s["Endpoint"] for s in subscriptions] == ([alarm_email] if alarm_email else [])

        stack = {"region": REGION, "aws_endpoint_url": None, "topics": provisioned.topic_arns, "secrets": {}}
        view = local_view(stack)
        assert view.alarm_topic_arns == (alarm_topic,)
        [finding] = check_alarm_topics(view)
        assert alarm_topic in finding.what
        assert finding.ok is bool(alarm_email)


def test_a_deployed_stack_is_seen_from_cloudformation() -> None:
    """CloudFormation's answers for a deployed stack (moto's CloudFormation creates neither secrets
    nor alarms), and CloudWatch holding the alarm that names the topic."""
    secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/prod/users/mongodb-uri-AbCdEf"
    resources = [
        ("UsersMongoSecret", "AWS::SecretsManager::Secret", secret_arn),
        ("UserPool", "AWS::Cognito::UserPool", "eu-west-1_Deployed1"),
        ("OrdersDeadLetterAlarm", "AWS::CloudWatch::Alarm", "shop-prod-orders-dlq"),
        ("InventoryDeadLetterAlarm", "AWS::CloudWatch::Alarm", "shop-prod-inventory-dlq"),
    ]
    with mock_aws():
        topic = boto3.client("sns").create_topic(Name="shop-prod-alarms")["TopicArn"]
        cloudwatch = boto3.client("cloudwatch")
        for _, _, alarm in resources[2:]:
            cloudwatch.put_metric_alarm(
                AlarmName=alarm,
                Namespace="AWS/SQS",
                MetricName="ApproximateNumberOfMessagesVisible",
                Statistic="Maximum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=0,
                ComparisonOperator="GreaterThanThreshold",
                AlarmActions=[topic],
            )
        cloudformation = boto3.client("cloudformation")
        with Stubber(cloudformation) as stubbed:
            stubbed.add_response(
                "describe_stacks",
                {
                    "Stacks": [
                        {
                            "StackName": "shop-prod",
                            "CreationTime": datetime.now(UTC),
                            "StackStatus": "UPDATE_COMPLETE",
                            "Parameters": [
                                {"ParameterKey": "Stage", "ParameterValue": "prod"},
                                {"ParameterKey": "SenderEmail", "ParameterValue": "shop@example.com"},
                            ],
                            "Outputs": [
                                {
                                    "OutputKey": "ApiUrl",
                                    "OutputValue": "https://abc123.execute-api.eu-west-1.amazonaws.com/prod",
                                },
                                {"OutputKey": "UserPoolId", "OutputValue": "eu-west-1_Deployed1"},
                            ],
                        }
                    ]
                },
                {"StackName": "shop-prod"},
            )
            stubbed.add_response(
                "list_stack_resources",
                {
                    "StackResourceSummaries": [
                        {
                            "LogicalResourceId": logical_id,
                            "PhysicalResourceId": physical_id,
                            "ResourceType": resource_type,
                            "LastUpdatedTimestamp": datetime.now(UTC),
                            "ResourceStatus": "CREATE_COMPLETE",
                        }
                        for logical_id, resource_type, physical_id in resources
                    ]
                },
                {"StackName": "shop-prod"},
            )

            view = deployed_view(cloudformation, cloudwatch, "shop-prod")

    assert (view.stage, view.sender, view.user_pool_id, view.region, view.endpoint_url) == (
        "prod",
        "shop@example.com",
        "eu-west-1_Deployed1",
        REGION,
        None,
    )
    assert view.secrets == {"UsersMongoSecret": secret_arn}
    assert view.api_url == "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
    assert (view.alarm_topic_arns, view.alarm_count) == ((topic,), 2)
