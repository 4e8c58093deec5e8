"""SnapStart applies to published versions only: every function must publish one behind the alias
`live`, and everything that invokes a function (API Gateway, SQS event source mappings, the SNS
subscription, the schedules, permissions) must point at that alias, or it invokes `$LATEST`,
which is never snapshotted and cold-starts every time.

The template is expanded the way CloudFormation would see it, by SAM's own translator (in the
tools virtualenv, whose pins clash with the project's), and the result is checked resource by
resource: SAM's AutoPublishAlias is what does the pointing, and this proves it reached everything.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.sam_translation import translated_resources

INTEGRATION_URI = r"arn:aws:apigateway:\$\{AWS::Region\}:lambda:path/2015-03-31/functions/\$\{(\w+)\}/invocations"


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return translated_resources()


def of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in resources.items() if r["Type"] == kind}


def alias_of(reference: Any, aliases: dict[str, dict[str, Any]]) -> str:
    """The function whose alias `live` ``reference`` names; fails on anything else."""
    assert isinstance(reference, dict) and set(reference) == {"Ref"}, f"not a Ref to an alias: {reference}"
    alias = aliases[reference["Ref"]]
    assert alias["Name"] == "live"
    function: str = alias["FunctionName"]["Ref"]
    return function


def test_every_function_runs_python313_on_a_published_version(resources: dict[str, Any]) -> None:
    functions = of_type(resources, "AWS::Lambda::Function")
    versions = of_type(resources, "AWS::Lambda::Version")
    aliases = of_type(resources, "AWS::Lambda::Alias")
    assert len(functions) == 13
    for name, function in functions.items():
        assert function["Runtime"] == "python3.13", name
        assert function["Architectures"] == ["arm64"], name
    assert sorted(v["FunctionName"]["Ref"] for v in versions.values()) == sorted(functions)
    assert sorted(a["FunctionName"]["Ref"] for a in aliases.values() if a["Name"] == "live") == sorted(functions)
    for layer in of_type(resources, "AWS::Lambda::LayerVersion").values():
        assert layer["CompatibleRuntimes"] == ["python3.13"]


def test_every_invoker_targets_the_alias_not_latest(resources: dict[str, Any]) -> None:
    aliases = of_type(resources, "AWS::Lambda::Alias")
    invoked: set[str] = set()
    for mapping in of_type(resources, "AWS::Lambda::EventSourceMapping").values():
        invoked.add(alias_of(mapping["FunctionName"], aliases))
    for permission in of_type(resources, "AWS::Lambda::Permission").values():
        invoked.add(alias_of(permission["FunctionName"], aliases))
    for rule in of_type(resources, "AWS::Events::Rule").values():
        for target in rule["Targets"]:
            invoked.add(alias_of(target["Arn"], aliases))
    for subscription in of_type(resources, "AWS::SNS::Subscription").values():
        if subscription["Protocol"] == "lambda":
            invoked.add(alias_of(subscription["Endpoint"], aliases))
    for config in of_type(resources, "AWS::Lambda::EventInvokeConfig").values():
        assert config["Qualifier"] == "live"
    assert invoked == set(of_type(resources, "AWS::Lambda::Function"))


def api_integrations(resources: dict[str, Any]) -> list[dict[str, Any]]:
    (api,) = of_type(resources, "AWS::ApiGateway::RestApi").values()
    return [
        operation["x-amazon-apigateway-integration"]
        for path in api["Body"]["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "x-amazon-apigateway-integration" in operation
    ]


def test_api_gateway_integrations_call_the_alias(resources: dict[str, Any]) -> None:
    integrations = api_integrations(resources)
    assert len(integrations) == 8  # the contract's routes
    aliases = of_type(resources, "AWS::Lambda::Alias")
    for integration in integrations:
        uri = integration["uri"]["Fn::Sub"]
        named = re.fullmatch(
            r"arn:aws:apigateway:\$\{AWS::Region\}:lambda:path/2015-03-31/functions/\$\{(\w+)\}/invocations", uri
        )
        assert named, uri
        alias_of({"Ref": named.group(1)}, aliases)


def test_snapstart_only_where_a_person_waits_for_a_cold_start(resources: dict[str, Any]) -> None:
    """SnapStart's cache and restores cost more than the INIT they replace (bench/snapstart_cost.py):
    it is on the functions API Gateway invokes, and on none that a queue, the topic or a schedule
    invokes, where nobody waits."""
    aliases = of_type(resources, "AWS::Lambda::Alias")
    called_by_the_api = set()
    for integration in api_integrations(resources):
        named = re.fullmatch(INTEGRATION_URI, integration["uri"]["Fn::Sub"])
        assert named, integration
        called_by_the_api.add(alias_of({"Ref": named.group(1)}, aliases))
    functions = of_type(resources, "AWS::Lambda::Function")
    with_snapstart = {name for name, function in functions.items() if "SnapStart" in function}

    assert called_by_the_api == {"UsersApiFunction", "OrdersApiFunction", "InventoryApiFunction"}
    assert with_snapstart == called_by_the_api
    for name in with_snapstart:
        assert functions[name]["SnapStart"] == {"ApplyOn": "PublishedVersions"}, name
