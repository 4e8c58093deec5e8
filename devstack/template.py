"""Reads template.yaml, so the local stack runs exactly what deploys.

Only what the local stack needs is modelled: functions (code, handler, environment,
timeout, triggers), queues, subscriptions, the topic, secrets and parameters. Intrinsic
functions (!Ref, !GetAtt, !Sub) are resolved against the local resources' names and ARNs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"
REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"  # moto's default account
# What the local stack gives the parameters a deploy must set (no default in the template):
# the sender is the one devstack/provision.py verifies in moto (env.json's for `sam local`).
LOCAL_PARAMETERS = {"SenderEmail": "shop@example.com"}


class CloudFormationLoader(yaml.SafeLoader):
    """Reads !Ref, !GetAtt, !Sub... as {"Ref": ...} / {"Fn::GetAtt": [...]} mappings."""


def _intrinsic(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(path.read_text(), Loader=CloudFormationLoader)
    return loaded


@dataclass
class Attributes:
    """What !Ref and !GetAtt of one resource resolve to locally."""

    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


class Resolver:
    def __init__(self, parameters: dict[str, str], conditions: dict[str, Any] | None = None) -> None:
        self.parameters = parameters
        self.conditions = conditions or {}
        self.resources: dict[str, Attributes] = {}
        self.pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def ref(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        return self.resources[name].ref

    def get_att(self, name: str, attribute: str) -> str:
        return self.resources[name].attributes[attribute]

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"}:
            return None if node["Ref"] == "AWS::NoValue" else self.ref(node["Ref"])
        if set(node) == {"Fn::GetAtt"}:
            name, attribute = node["Fn::GetAtt"]
            return self.get_att(name, attribute)
        if set(node) == {"Fn::Sub"}:
            return self._sub(node["Fn::Sub"])
        if set(node) == {"Fn::If"}:
            condition, when_true, when_false = node["Fn::If"]
            return self.resolve(when_true if self.holds(condition) else when_false)
        return {key: self.resolve(value) for key, value in node.items()}

    def holds(self, condition: str) -> bool:
        return self._evaluate(self.conditions[condition])

    def _evaluate(self, node: Any) -> bool:
        if "Condition" in node:
            return self.holds(node["Condition"])
        if "Fn::Equals" in node:
            left, right = node["Fn::Equals"]
            return bool(self.resolve(left) == self.resolve(right))
        if "Fn::Not" in node:
            return not self._evaluate(node["Fn::Not"][0])
        if "Fn::And" in node:
            return all(self._evaluate(item) for item in node["Fn::And"])
        if "Fn::Or" in node:
            return any(self._evaluate(item) for item in node["Fn::Or"])
        raise ValueError(f"Unsupported condition {node}")

    def _sub(self, spec: str | list[Any]) -> str:
        text, variables = (spec, {}) if isinstance(spec, str) else (spec[0], self.resolve(spec[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                resource, attribute = name.split(".", 1)
                return self.get_att(resource, attribute)
            return self.ref(name)

        return re.sub(r"\$\{([^}!]+)\}", replace, text)


@dataclass(frozen=True)
class FunctionTrigger:
    kind: str  # Api | SQS | SNS | Schedule
    properties: dict[str, Any]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    code_uri: Path
    handler: str
    timeout: int
    environment: dict[str, Any]  # unresolved
    triggers: list[FunctionTrigger]
    dead_letter_target: Any  # unresolved TargetArn, or None
    max_retry_attempts: int
    reserved_concurrency: Any = None  # unresolved ReservedConcurrentExecutions: the most containers at once
    snapstart: bool = False  # SnapStart on published versions: containers are restored from a snapshot


class Template:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.resources: dict[str, Any] = document["Resources"]
        self.globals: dict[str, Any] = document.get("Globals", {}).get("Function", {})

    def default_parameters(self) -> dict[str, str]:
        """Each parameter's default, or the local stack's value of one a deploy must set."""
        return {
            name: str(spec["Default"]) if "Default" in spec else LOCAL_PARAMETERS.get(name, "")
            for name, spec in self.document.get("Parameters", {}).items()
        }

    def of_type(self, resource_type: str, created_by: Resolver | None = None) -> dict[str, dict[str, Any]]:
        """Every resource of the type; with ``created_by``, only those whose Condition holds there
        (as CloudFormation creates them), such as the alarm email's subscription once AlarmEmail is set."""
        return {
            name: resource.get("Properties", {})
            for name, resource in self.resources.items()
            if resource["Type"] == resource_type
            and (created_by is None or "Condition" not in resource or created_by.holds(resource["Condition"]))
        }

    def authorizer_of(self, trigger: FunctionTrigger) -> dict[str, Any] | None:
        """The (unresolved) authorizer guarding an Api event: its API's DefaultAuthorizer unless
        the event says ``Auth: {Authorizer: NONE}``; None for a public route."""
        api_id = (trigger.properties.get("RestApiId") or {}).get("Ref")
        auth = self.resources.get(api_id, {}).get("Properties", {}).get("Auth", {}) if api_id else {}
        name = trigger.properties.get("Auth", {}).get("Authorizer", auth.get("DefaultAuthorizer"))
        if name is None or name == "NONE":
            return None
        authorizer: dict[str, Any] = auth["Authorizers"][name]
        return authorizer

    def functions(self) -> list[FunctionSpec]:
        specs = []
        for name, props in self.of_type("AWS::Serverless::Function").items():
            environment = {
                **self.globals.get("Environment", {}).get("Variables", {}),
                **props.get("Environment", {}).get("Variables", {}),
            }
            triggers = [
                FunctionTrigger(event["Type"], event.get("Properties", {}))
                for event in props.get("Events", {}).values()
            ]
            specs.append(
                FunctionSpec(
                    name=name,
                    code_uri=ROOT / props["CodeUri"],
                    handler=props["Handler"],
                    timeout=int(props.get("Timeout", self.globals.get("Timeout", 3))),
                    environment=environment,
                    triggers=triggers,
                    dead_letter_target=props.get("DeadLetterQueue", {}).get("TargetArn"),
                    max_retry_attempts=int(props.get("EventInvokeConfig", {}).get("MaximumRetryAttempts", 2)),
                    reserved_concurrency=props.get(
                        "ReservedConcurrentExecutions", self.globals.get("ReservedConcurrentExecutions")
                    ),
                    snapstart=props.get("SnapStart", self.globals.get("SnapStart", {})).get("ApplyOn")
                    == "PublishedVersions",
                )
            )
        return specs
