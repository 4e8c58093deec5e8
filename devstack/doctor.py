"""Is a stack ready to serve? One line per finding: OK, or PROBLEM with what is wrong and how to fix it.

`python -m devstack doctor` checks the local stack (stack.json); `--aws --stack-name NAME` a deployed
one, found from its CloudFormation parameters, outputs and resources. Each check reads a StackView,
so tests build one without CloudFormation. No secret value and no email address is ever printed:
findings name secrets, hosts and parameters instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pymongo import MongoClient
from pymongo.errors import ConfigurationError, InvalidURI, OperationFailure, PyMongoError
from pymongo.uri_parser import parse_uri

from devstack.provision import aws_client
from devstack.template import Template, load_template

STAFF_GROUP = "staff"  # the contract's group of shop staff (template.yaml's StaffGroup)
PROBE_SKU = "doctor-probe"  # any sku: a 404 from the inventory function is as healthy as a 200
SANDBOX_DAILY_QUOTA = 200  # SES's Max24HourSend for an account in the sandbox
DEFAULT_TIMEOUT_MS = 5000  # server selection: an answer within seconds, not pymongo's 30
API_TIMEOUT_S = 10  # a cold start behind API Gateway included


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"OK       {self.what}"
        return f"PROBLEM  {self.what} -> {self.fix}"


@dataclass(frozen=True)
class StackView:
    """What the checks need of one stack, resolved from CloudFormation or from the local stack.json."""

    stage: str
    secrets: dict[str, str]  # logical id -> ARN
    sender: str | None  # the SenderEmail parameter
    user_pool_id: str | None
    api_url: str | None
    alarm_topic_arns: tuple[str, ...]  # where the stack's alarms send their notifications
    alarm_count: int
    region: str
    endpoint_url: str | None = None  # the local stack's moto; None: AWS (or mock_aws in tests)

    @property
    def local(self) -> bool:
        return self.endpoint_url is not None

    def client(self, service: str) -> Any:
        if self.endpoint_url is not None:
            return aws_client(service, self.endpoint_url)
        return boto3.client(service, region_name=self.region)


def aws_view(stack_name: str, region: str | None) -> StackView:
    cloudformation = boto3.client("cloudformation", region_name=region)
    cloudwatch = boto3.client("cloudwatch", region_name=cloudformation.meta.region_name)
    return deployed_view(cloudformation, cloudwatch, stack_name)


def deployed_view(cloudformation: Any, cloudwatch: Any, stack_name: str) -> StackView:
    """A deployed stack: the Stage and SenderEmail parameters, the ApiUrl and UserPoolId outputs, its
    secrets, and the topics its alarms notify (as CloudWatch holds them, not as the template says)."""
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    # describe_stack_resources returns the first 100 resources only; the expanded stack has more
    resources: dict[str, dict[str, str]] = {}
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for resource in page["StackResourceSummaries"]:
            resources.setdefault(resource["ResourceType"], {})[resource["LogicalResourceId"]] = resource.get(
                "PhysicalResourceId", ""
            )
    alarm_names = list(resources.get("AWS::CloudWatch::Alarm", {}).values())
    topics = _alarm_topics(cloudwatch, alarm_names)
    topics += [arn for key, arn in outputs.items() if key.endswith("AlarmTopicArn") and arn not in topics]
    pools = list(resources.get("AWS::Cognito::UserPool", {}).values())
    return StackView(
        stage=parameters.get("Stage", ""),
        secrets=resources.get("AWS::SecretsManager::Secret", {}),  # a secret's physical id is its ARN
        sender=parameters.get("SenderEmail") or None,
        user_pool_id=outputs.get("UserPoolId") or next(iter(pools), None),
        api_url=outputs.get("ApiUrl"),
        alarm_topic_arns=tuple(topics),
        alarm_count=len(alarm_names),
        region=cloudformation.meta.region_name,
    )


def _alarm_topics(cloudwatch: Any, alarm_names: list[str]) -> list[str]:
    topics: list[str] = []
    for start in range(0, len(alarm_names), 100):  # DescribeAlarms takes 100 names at most
        for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNames=alarm_names[start : start + 100]):
            for alarm in page["MetricAlarms"] + page.get("CompositeAlarms", []):
                topics += [arn for arn in alarm.get("AlarmActions", []) if ":sns:" in arn and arn not in topics]
    return topics


def local_view(stack: dict[str, Any]) -> StackView:
    """The local stack as stack.json describes it; its alarms (which moto does not run) as the template has them."""
    template = Template(load_template())
    alarms = template.of_type("AWS::CloudWatch::Alarm").values()
    topics: dict[str, str] = stack["topics"]
    actions = [action.get("Ref") for alarm in alarms for action in alarm.get("AlarmActions", [])]
    senders: list[str] = stack.get("sender_identities") or []
    return StackView(
        stage=template.default_parameters().get("Stage", ""),
        secrets=stack["secrets"],
        sender=next(iter(senders), None),
        user_pool_id=stack.get("user_pool_id"),
        api_url=stack.get("api_url"),
        alarm_topic_arns=tuple(dict.fromkeys(topics[name] for name in actions if name in topics)),
        alarm_count=len(alarms),
        region=stack["region"],
        endpoint_url=stack["aws_endpoint_url"],
    )


# ---------- secrets ----------


@dataclass(frozen=True)
class Secret:
    logical_id: str
    name: str  # its name in Secrets Manager, safe to print
    value: str | None  # None: unreadable, see error
    error: str | None = None


def read_secret(view: StackView, logical_id: str, arn: str) -> Secret:
    name = _secret_name(arn)
    try:
        answer = view.client("secretsmanager").get_secret_value(SecretId=arn)
    except ClientError as error:
        return Secret(logical_id, name, None, error.response["Error"]["Code"])
    return Secret(logical_id, answer.get("Name", name), answer.get("SecretString", ""))


def _secret_name(arn: str) -> str:
    """shop/dev/users/mongodb-uri of arn:...:secret:shop/dev/users/mongodb-uri-AbCdEf."""
    name = arn.split(":secret:", 1)[-1]
    return name[:-7] if len(name) > 7 and name[-7] == "-" else name


def _what_belongs_in(placeholder: str | None) -> str:
    if placeholder and placeholder.startswith("mongodb"):
        return "<the service's MongoDB connection string>"
    if placeholder and placeholder.startswith("sk_"):
        return "<the Stripe secret key>"
    return "<value>"


def check_secret_set(secret: Secret, placeholder: str | None) -> Finding:
    value = _what_belongs_in(placeholder)
    fix = f"aws secretsmanager put-secret-value --secret-id {secret.name} --secret-string '{value}'"
    subject = f"secret {secret.logical_id} ({secret.name})"
    if secret.value is None:
        return Finding(
            False, f"{subject} cannot be read ({secret.error})", "check it exists and your credentials may read it"
        )
    if not secret.value.strip():
        return Finding(False, f"{subject} is empty", fix)
    if secret.value == placeholder:
        return Finding(False, f"{subject} still holds the template's placeholder", fix)
    return Finding(True, f"{subject} is set")


def check_connection_string(logical_id: str, uri: str, connect: bool, timeout_ms: int) -> Finding:
    """Parses (an SRV string resolves its hosts through DNS) and, with ``connect``, pings the cluster."""
    subject = f"connection string of {logical_id}"
    try:
        hosts = ", ".join(f"{host}:{port}" for host, port in parse_uri(uri)["nodelist"])
    except (InvalidURI, ConfigurationError, ValueError) as error:
        return Finding(
            False,
            f"{subject} is not a MongoDB connection string ({type(error).__name__}: {_scrubbed(str(error), uri)})",
            "put the mongodb+srv://... string Atlas gives under Connect > Drivers",
        )
    if not connect:
        return Finding(True, f"{subject} parses ({hosts}); not reached (--no-connect)")
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, appname="shop-doctor"
    )
    try:
        client.admin.command("ping")
    except OperationFailure as error:
        return Finding(
            False,
            f"{subject}: {hosts} refused its credentials (code {error.code})",
            "check the database user and password in it (Atlas: Database Access)",
        )
    except PyMongoError as error:
        return Finding(
            False,
            f"{subject}: no server of {hosts} answered within {timeout_ms} ms ({type(error).__name__})",
            "check the host names, and allow this machine's and the functions' addresses in Atlas Network Access "
            "(or run with --no-connect from outside it)",
        )
    finally:
        client.close()
    return Finding(True, f"{subject} reaches its cluster ({hosts})")


def _scrubbed(message: str, uri: str) -> str:
    """A parser's message without the string itself or its password, should it quote them."""
    password = urlsplit(uri).password if "://" in uri else None
    for secret in filter(None, (uri, password)):
        message = message.replace(secret, "***")
    return message


def check_stripe_key(logical_id: str, key: str, stage: str) -> Finding:
    """prod takes live keys, every other stage test keys; restricted keys (rk_) have the same two modes."""
    mode, other = ("live", "test") if stage == "prod" else ("test", "live")
    subject = f"Stripe key in {logical_id}"
    if key.startswith((f"sk_{mode}_", f"rk_{mode}_")):
        return Finding(True, f"{subject} is a {mode} key, as stage {stage} needs")
    fix = f"put a {mode} secret key (sk_{mode}_...) from the Stripe dashboard into {logical_id}"
    if key.startswith((f"sk_{other}_", f"rk_{other}_")):
        return Finding(False, f"{subject} is a {other} key on stage {stage}", fix)
    return Finding(False, f"{subject} is not a Stripe secret key (sk_... or rk_...)", fix)


# ---------- email ----------


def check_sender(view: StackView) -> Finding:
    """The address, or its whole domain, verified in SES in the stack's region."""
    if not view.sender:
        return Finding(False, "the stack has no SenderEmail", "deploy with --parameter-overrides SenderEmail=<address>")
    domain = view.sender.rpartition("@")[2]
    answer = view.client("ses").get_identity_verification_attributes(Identities=[view.sender, domain])
    statuses = {attributes["VerificationStatus"] for attributes in answer["VerificationAttributes"].values()}
    if "Success" in statuses:
        return Finding(True, f"the sender (SenderEmail) is a verified SES identity in {view.region}")
    if "Pending" in statuses:
        return Finding(
            False,
            f"the sender (SenderEmail) awaits its SES verification in {view.region}",
            "open the link AWS mailed to it (or publish the domain's DKIM records)",
        )
    return Finding(
        False,
        f"the sender (SenderEmail) is not a verified SES identity in {view.region}: every email fails",
        f"aws ses verify-email-identity --region {view.region} --email-address <SenderEmail> (or verify its domain), "
        "then open the link AWS mails",
    )


def check_sandbox(view: StackView) -> Finding:
    daily = int(view.client("ses").get_send_quota()["Max24HourSend"])
    if daily > SANDBOX_DAILY_QUOTA:
        return Finding(True, f"SES has production access in {view.region} ({daily} emails a day)")
    if view.stage == "prod":
        return Finding(
            False,
            f"SES in {view.region} is in the sandbox: emails reach verified addresses only, {daily} a day",
            "request production access (SES console > Account dashboard)",
        )
    return Finding(
        True, f"SES in {view.region} is in the sandbox: emails reach verified addresses only (enough for {view.stage})"
    )


# ---------- alarms, users, API ----------


def check_alarm_topics(view: StackView) -> list[Finding]:
    if not view.alarm_topic_arns:
        return [
            Finding(
                False,
                f"the stack's {view.alarm_count} alarms notify no SNS topic: alarms reach no one",
                "give the alarms an SNS topic in AlarmActions (template.yaml) and subscribe someone to it",
            )
        ]
    return [_check_subscribed(view, arn) for arn in view.alarm_topic_arns]


def _check_subscribed(view: StackView, topic_arn: str) -> Finding:
    sns = view.client("sns")
    arns = [
        subscription["SubscriptionArn"]
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
        for subscription in page["Subscriptions"]
    ]
    confirmed = [arn for arn in arns if arn.startswith("arn:")]  # else PendingConfirmation (or Deleted)
    if confirmed:
        return Finding(True, f"alarm topic {topic_arn} has {len(confirmed)} confirmed subscription(s)")
    pending = f" ({len(arns)} awaiting confirmation: open the link in the mail)" if arns else ""
    return Finding(
        False,
        f"alarm topic {topic_arn} has no confirmed subscription{pending}",
        f"aws sns subscribe --topic-arn {topic_arn} --protocol email --notification-endpoint <your address>, "
        "then confirm",
    )


def check_staff(view: StackView) -> Finding:
    if not view.user_pool_id:
        return Finding(False, "the stack has no user pool", "check the stack's UserPoolId output")
    cognito = view.client("cognito-idp")
    try:
        members = cognito.list_users_in_group(UserPoolId=view.user_pool_id, GroupName=STAFF_GROUP, Limit=1)["Users"]
    except cognito.exceptions.ResourceNotFoundException:
        return Finding(
            False,
            f"user pool {view.user_pool_id} or its group {STAFF_GROUP} does not exist",
            "check the UserPoolId output and that the deploy finished",
        )
    if members:
        return Finding(True, f"user pool {view.user_pool_id} has a member of group {STAFF_GROUP}")
    fix = (
        f"python -m devstack token <email> --{STAFF_GROUP}"
        if view.local
        else f"sign up, then aws cognito-idp admin-add-user-to-group --user-pool-id {view.user_pool_id} "
        f"--username <your username> --group-name {STAFF_GROUP}"
    )
    return Finding(
        False, f"user pool {view.user_pool_id} has no one in group {STAFF_GROUP}: nobody can stock the shop", fix
    )


def check_api(view: StackView, timeout_s: float) -> Finding:
    if not view.api_url:
        return Finding(False, "the stack has no ApiUrl", "check the stack's outputs")
    url = f"{view.api_url.rstrip('/')}/inventory/{PROBE_SKU}"
    subject = f"GET {url}"
    try:
        with urlopen(Request(url, headers={"Accept": "application/json"}), timeout=timeout_s) as response:
            status, body = response.status, response.read()
    except HTTPError as error:
        status, body = error.code, error.read()
    except (URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Finding(False, f"{subject}: no answer ({reason})", "check the ApiUrl output and that the stack is up")
    if status >= 500:
        return Finding(
            False,
            f"{subject} answered {status}",
            "fix the findings above (secrets, MongoDB), then read the inventory API function's log group",
        )
    if status not in (200, 404) or not _is_json(body):
        return Finding(
            False, f"{subject} answered {status} without the inventory's JSON", "check the API's stage and routes"
        )
    return Finding(True, f"{subject} answers ({status})")


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


# ---------- all of it ----------


def examine(view: StackView, connect: bool = True, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> list[Finding]:
    placeholders = {
        name: str(props.get("SecretString", ""))
        for name, props in Template(load_template()).of_type("AWS::SecretsManager::Secret").items()
    }
    secrets = [read_secret(view, logical_id, arn) for logical_id, arn in view.secrets.items()]
    set_findings = [check_secret_set(secret, placeholders.get(secret.logical_id)) for secret in secrets]
    findings = list(set_findings)
    for secret, finding in zip(secrets, set_findings, strict=True):
        placeholder = placeholders.get(secret.logical_id, "")
        if not finding.ok or secret.value is None:  # only a set value says more
            continue
        if placeholder.startswith("mongodb"):
            findings.append(check_connection_string(secret.logical_id, secret.value, connect, timeout_ms))
        elif placeholder.startswith("sk_"):
            findings.append(check_stripe_key(secret.logical_id, secret.value, view.stage))
    findings += _guarded("SES sender", lambda: [check_sender(view)])
    findings += _guarded("SES account", lambda: [check_sandbox(view)])
    findings += _guarded("alarm topics", lambda: check_alarm_topics(view))
    findings += _guarded("user pool", lambda: [check_staff(view)])
    findings.append(check_api(view, API_TIMEOUT_S))
    return findings


def _guarded(subject: str, check: Callable[[], list[Finding]]) -> list[Finding]:
    """A check whose AWS call fails (no permission, a throttle) is a finding, not a traceback."""
    try:
        return check()
    except (ClientError, BotoCoreError) as error:
        code = error.response["Error"]["Code"] if isinstance(error, ClientError) else type(error).__name__
        return [Finding(False, f"{subject}: cannot check ({code})", "check your AWS credentials and region")]


def run_doctor(view: StackView, connect: bool = True, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> int:
    findings = examine(view, connect, timeout_ms)
    for finding in findings:
        print(finding.line())
    problems = sum(not finding.ok for finding in findings)
    print(f"{problems} problem(s) in {len(findings)} check(s) of stage {view.stage}")
    return 1 if problems else 0
