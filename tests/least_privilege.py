"""Least privilege, as a comparison: what each function's role grants against what it needs.

What a function needs comes from two places:
- the platform, given the function's own configuration: writing its logs, its traces (Tracing
  Active), receiving from and deleting in the queues of its SQS event source mappings, sending to
  the dead-letter queue of its asynchronous invocations;
- its code: every AWS operation reachable from its handler (tests.code_reach), on the resource
  the code takes it to (TARGETS: where the code finds each call's resource, its environment).

What a role grants is read from the template as CloudFormation gets it (tests.sam_translation):
SAM's policy templates and inline policies expanded, the hand-written roles as they are, AWS
managed policies by their known contents. Resources are compared resolved (ARNs), with IAM's
wildcards, so that a grant written as a policy template and one written out compare equal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.session import get_session

from devstack.template import ACCOUNT_ID, REGION, Attributes, Resolver
from tests.code_reach import AwsCall, Reach, reach

ROOT = Path(__file__).resolve().parents[1]
S3_ARTIFACTS = "artifacts"  # tests.sam_translation's bucket: the key is the path in the repository

# AWS managed policies a role may carry, by their contents: AWS maintains them, so a grant in them
# the function does not use is not ours to remove, but none other may be attached.
MANAGED_POLICIES: dict[str, tuple[str, ...]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": (
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ),
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": (
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
    ),
}
# Operations IAM authorises under another action's name.
ACTION_OF_OPERATION = {
    "sns:PublishBatch": "sns:Publish",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
# What the event source mapping of an SQS trigger does with the function's role.
EVENT_SOURCE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


@dataclass(frozen=True)
class Access:
    """An action a function takes on a resource, and why (compared without the why)."""

    action: str
    resource: str
    why: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.action} on {self.resource} ({self.why})"


@dataclass(frozen=True)
class Grant:
    action: str
    resource: str  # an ARN pattern: IAM's * and ?
    source: str = field(default="", compare=False)
    managed: bool = False  # from an AWS managed policy

    def covers(self, access: Access) -> bool:
        return self.action == access.action and matches(self.resource, access.resource)

    def __str__(self) -> str:
        return f"{self.action} on {self.resource} ({self.source})"


def matches(pattern: str, resource: str) -> bool:
    """IAM's resource matching: ``*`` any characters, ``?`` one."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, resource) is not None


def iam_action(call: AwsCall) -> str:
    prefix = get_session().get_service_model(call.service).signing_name
    action = f"{prefix}:{call.operation}"
    return ACTION_OF_OPERATION.get(action, action)


@dataclass(frozen=True)
class LambdaFunction:
    """One function of the translated template, with what its role and code are read from."""

    name: str
    properties: dict[str, Any]
    code_roots: tuple[Path, ...]  # its code, then its layers' (as Lambda puts them on sys.path)
    sqs_sources: tuple[Any, ...]  # the EventSourceArn of each of its SQS event source mappings

    @property
    def handler(self) -> str:
        return str(self.properties["Handler"])

    @property
    def environment(self) -> dict[str, Any]:
        variables: dict[str, Any] = self.properties.get("Environment", {}).get("Variables", {})
        return variables


def lambda_functions(resources: dict[str, Any]) -> dict[str, LambdaFunction]:
    """Every AWS::Lambda::Function of a translated template."""

    def of_type(kind: str) -> dict[str, dict[str, Any]]:
        return {name: r.get("Properties", {}) for name, r in resources.items() if r["Type"] == kind}

    def artifact_path(code: dict[str, Any]) -> Path:
        assert code.get("S3Bucket") == S3_ARTIFACTS, code
        return ROOT / code["S3Key"]

    layers = {name: artifact_path(props["Content"]) for name, props in of_type("AWS::Lambda::LayerVersion").items()}
    aliases = {name: props["FunctionName"]["Ref"] for name, props in of_type("AWS::Lambda::Alias").items()}
    sources: dict[str, list[Any]] = {}
    for mapping in of_type("AWS::Lambda::EventSourceMapping").values():
        target = mapping["FunctionName"]["Ref"]
        sources.setdefault(aliases.get(target, target), []).append(mapping["EventSourceArn"])
    functions = {}
    for name, props in of_type("AWS::Lambda::Function").items():
        layer_paths = [layers[layer["Ref"]] for layer in props.get("Layers", []) if layer.get("Ref") in layers]
        for queue in sources.get(name, []):
            assert queue["Fn::GetAtt"][1] == "Arn", f"{name}: an event source other than a queue of the template"
        functions[name] = LambdaFunction(
            name, props, (artifact_path(props["Code"]), *layer_paths), tuple(sources.get(name, []))
        )
    return functions


def symbolic_resolver(template: dict[str, Any]) -> Resolver:
    """Resolves a translated template's references to the ARNs its resources would have in the
    account and region of the tests (queues named by their logical ids)."""
    parameters = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    resolver = Resolver(parameters, template.get("Conditions", {}))
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::SNS::Topic":
            topic = resolver.resolve(props.get("TopicName", name))
            arn = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{topic}"
            resolver.resources[name] = Attributes(arn, {"TopicName": topic, "TopicArn": arn})
        elif kind == "AWS::SQS::Queue":
            arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"
            url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}"
            resolver.resources[name] = Attributes(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})
        elif kind == "AWS::Logs::LogGroup":
            group = resolver.resolve(props["LogGroupName"])
            resolver.resources[name] = Attributes(
                group, {"Arn": f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{group}:*"}
            )
        elif kind == "AWS::SecretsManager::Secret":
            secret_name = resolver.resolve(props.get("Name", name))
            resolver.resources[name] = Attributes(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{secret_name}")
    return resolver


# ---------- what a function needs ----------


def platform_accesses(function: LambdaFunction, resolver: Resolver) -> set[Access]:
    """What Lambda does with the function's role for the function's configuration."""
    # Its own group (LoggingConfig), else Lambda's default, named after the function; without a FunctionName,
    # CloudFormation names the function: the stack's name, the logical id, a suffix.
    name = resolver.resolve(function.properties.get("FunctionName")) or f"shop-{function.name}-A1B2C3D4E5F6"
    group = resolver.resolve(function.properties.get("LoggingConfig", {}).get("LogGroup")) or f"/aws/lambda/{name}"
    stream = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{group}:log-stream:a-stream"
    needed = {Access(action, stream, "its log") for action in ("logs:CreateLogStream", "logs:PutLogEvents")}
    if function.properties.get("TracingConfig", {}).get("Mode") == "Active":
        needed |= {
            Access(action, "*", "Tracing: Active") for action in ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
        }
    for queue in function.sqs_sources:
        needed |= {Access(action, resolver.resolve(queue), "its SQS event source") for action in EVENT_SOURCE_ACTIONS}
    dead_letter = function.properties.get("DeadLetterConfig", {}).get("TargetArn")
    if dead_letter is not None:
        arn = resolver.resolve(dead_letter)
        action = "sqs:SendMessage" if arn.startswith("arn:aws:sqs:") else "sns:Publish"
        needed.add(Access(action, arn, "the dead-letter queue of its asynchronous invocations"))
    return needed


Targets = Callable[[LambdaFunction, Reach, Resolver], list[str]]


def _environment_value(function: LambdaFunction, resolver: Resolver, variable: str) -> str:
    assert variable in function.environment, f"{function.name}: its code reads {variable}, which it is not given"
    return str(resolver.resolve(function.environment[variable]))


def _secrets_read(function: LambdaFunction, found: Reach, resolver: Resolver) -> list[str]:
    """The secrets named by the environment variables the code reads (MONGODB_SECRET_ID, ...)."""
    secret_refs = {
        variable: value["Ref"]
        for variable, value in function.environment.items()
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in resolver.resources
    }
    return [
        resolver.ref(ref)
        for variable, ref in secret_refs.items()
        if variable in found.strings and resolver.ref(ref).startswith("arn:aws:secretsmanager:")
    ]


# Where the code takes the resource of each action it calls from.
TARGETS: dict[str, Targets] = {
    "sns:Publish": lambda function, _, resolver: [_environment_value(function, resolver, "EVENT_TOPIC_ARN")],
    "secretsmanager:GetSecretValue": _secrets_read,
    "ses:SendEmail": lambda function, _, resolver: [
        f"arn:aws:ses:{REGION}:{ACCOUNT_ID}:identity/{_environment_value(function, resolver, 'SENDER_EMAIL')}"
    ],
    # The records it was handed, and their queues' settings: its event source mappings' queues.
    "sqs:ChangeMessageVisibility": lambda function, _, resolver: [resolver.resolve(q) for q in function.sqs_sources],
    "sqs:GetQueueAttributes": lambda function, _, resolver: [resolver.resolve(q) for q in function.sqs_sources],
}


def code_reach(function: LambdaFunction) -> Reach:
    return reach(function.code_roots, function.handler)


def code_accesses(function: LambdaFunction, resolver: Resolver) -> set[Access]:
    found = code_reach(function)
    needed = set()
    for call, where in found.calls.items():
        action = iam_action(call)
        assert action in TARGETS, (
            f"{function.name} calls {call.operation} ({where}): say in TARGETS where the code takes its resource from"
        )
        for resource in TARGETS[action](function, found, resolver):
            needed.add(Access(action, resource, f"{call.operation} in {where}"))
    return needed


def needed_accesses(function: LambdaFunction, resolver: Resolver) -> set[Access]:
    return platform_accesses(function, resolver) | code_accesses(function, resolver)


# ---------- what its role grants ----------


def granted(function: LambdaFunction, resources: dict[str, Any], resolver: Resolver) -> set[Grant]:
    role_arn = function.properties["Role"]
    assert isinstance(role_arn, dict) and "Fn::GetAtt" in role_arn, f"{function.name}: a role outside the template"
    role_name = role_arn["Fn::GetAtt"][0]
    role = resources[role_name]["Properties"]
    grants: set[Grant] = set()
    for arn in role.get("ManagedPolicyArns", []):
        assert arn in MANAGED_POLICIES, f"{role_name}: managed policy {arn} (its contents are not known here)"
        grants |= {Grant(action, "*", arn, managed=True) for action in MANAGED_POLICIES[arn]}
    documents = [(f"{role_name}/{p['PolicyName']}", p["PolicyDocument"]) for p in role.get("Policies", [])]
    for name, resource in resources.items():  # policies attached to the role from outside it
        attached = resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        if attached and {"Ref": role_name} in resource["Properties"].get("Roles", []):
            documents.append((name, resource["Properties"]["PolicyDocument"]))
    for source, document in documents:
        for statement in _as_list(document["Statement"]):
            assert statement["Effect"] == "Allow", f"{source}: only Allow statements are compared"
            assert "NotAction" not in statement and "NotResource" not in statement, f"{source}: Not* is not compared"
            for action in _as_list(statement["Action"]):
                for resource in _as_list(resolver.resolve(statement["Resource"])):
                    grants.add(Grant(action, str(resource), f"{source} {statement.get('Sid', '')}".strip()))
    return grants


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def compare(needed: set[Access], grants: set[Grant]) -> tuple[list[Access], list[Grant]]:
    """What is needed but not granted, and what is granted (outside AWS managed policies) but
    not needed."""
    missing = sorted((a for a in needed if not any(g.covers(a) for g in grants)), key=str)
    unused = sorted((g for g in grants if not g.managed and not any(g.covers(a) for a in needed)), key=str)
    return missing, unused
