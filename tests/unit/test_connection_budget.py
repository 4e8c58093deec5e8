"""The connections the stack may open to its Atlas cluster, in the worst case, fit the cluster.

Atlas counts connections per node (M10: 1,500). Every function instance (container) keeps its own
client, so the primary sees, per container, the client's pool and its monitoring connection, and
at most as many containers as the function's maximum concurrency. That maximum is read from the
template as CloudFormation gets it (SAM's translation), with each environment's parameters of
samconfig.toml: its reserved concurrency if set; else its SQS event sources' MaximumConcurrency;
else, if only schedules invoke it, the runs that can overlap; else (API Gateway, SNS) nothing caps
it but the account. All functions together never run more instances than the account's
concurrency (AccountConcurrencyLimit). The total must stay within 80% of AtlasConnectionLimit:
the rest is for Atlas's own connections, the operator's shell, and the previous version's idle
containers, which hold theirs for a few minutes after a deploy.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from shop_common.container import release_all
from shop_common.mongo import client_for
from tests.sam_translation import ROOT, translated_template

HEADROOM = 0.8
# Lambda retries a failed asynchronous invocation (a schedule's) twice unless told otherwise.
ASYNC_RETRIES = 2
NO_VALUE = object()


@dataclass(frozen=True)
class FunctionBudget:
    function: str
    max_concurrency: int | None  # None: only the account caps it
    why: str
    per_container: int

    @property
    def connections(self) -> int | None:
        return None if self.max_concurrency is None else self.max_concurrency * self.per_container


def deploy_environments() -> dict[str, dict[str, str]]:
    """Each samconfig.toml environment's parameter overrides (what `sam deploy --config-env` passes)."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    return {
        name: dict(pair.split("=", 1) for pair in section["deploy"]["parameters"]["parameter_overrides"].split())
        for name, section in config.items()
        if isinstance(section, dict) and "deploy" in section
    }


class Evaluated:
    """The template's intrinsic functions that size concurrency, with one environment's parameters."""

    def __init__(self, template: dict[str, Any], overrides: dict[str, str]) -> None:
        self.parameters = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
        self.parameters.update(overrides)
        self._conditions = template.get("Conditions", {})

    def value(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            [(function, argument)] = node.items()
            if function == "Ref" and argument == "AWS::NoValue":
                return NO_VALUE
            if function == "Ref" and argument in self.parameters:
                return self.parameters[argument]
            if function == "Fn::If":
                condition, if_true, if_false = argument
                return self.value(if_true if self.condition(condition) else if_false)
        return node

    def condition(self, name: str) -> bool:
        return self._truth(self._conditions[name])

    def _truth(self, node: Any) -> bool:
        [(function, argument)] = node.items()
        if function == "Fn::Equals":
            left, right = (str(self.value(side)) for side in argument)
            return left == right
        if function == "Fn::Not":
            return not self._truth(argument[0])
        if function == "Fn::And":
            return all(self._truth(each) for each in argument)
        if function == "Fn::Or":
            return any(self._truth(each) for each in argument)
        if function == "Condition":
            return self.condition(argument)
        raise AssertionError(f"condition not understood: {node}")


@pytest.fixture(scope="module")
def connections_per_container() -> Iterator[int]:
    """To the primary, from one container: its pool, and the monitors it keeps on that member."""
    release_all()
    options = client_for("mongodb://127.0.0.1:1,127.0.0.1:2,127.0.0.1:3/?replicaSet=rs0", "budget").options
    monitors = 1 if options.server_monitoring_mode == "poll" else 2  # streaming adds a round-trip timer
    yield int(options.pool_options.max_pool_size) + monitors
    release_all()


@dataclass
class Invokers:
    """What invokes each function (by the function's logical id)."""

    sqs_caps: dict[str, list[int | None]]  # each SQS event source's MaximumConcurrency
    schedules: dict[str, list[int]]  # minutes between runs of each schedule
    uncapped: dict[str, set[str]]  # the services that invoke it with nothing to cap them (API Gateway, SNS)


def invokers(resources: dict[str, Any]) -> Invokers:
    function_of: dict[str, str] = {}  # a function's or its alias's logical id -> the function's
    for name, resource in resources.items():
        if resource["Type"] == "AWS::Lambda::Function":
            function_of[name] = name
        elif resource["Type"] == "AWS::Lambda::Alias":
            function_of[name] = resource["Properties"]["FunctionName"]["Ref"]

    def target(reference: Any) -> str:
        return function_of.get(reference.get("Ref", ""), "") if isinstance(reference, dict) else ""

    found = Invokers({}, {}, {})
    for resource in resources.values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::EventSourceMapping":
            cap = properties.get("ScalingConfig", {}).get("MaximumConcurrency")
            found.sqs_caps.setdefault(target(properties["FunctionName"]), []).append(cap)
        elif resource["Type"] == "AWS::Events::Rule":
            minutes = re.fullmatch(r"rate\((\d+) minutes?\)", properties["ScheduleExpression"])
            assert minutes, properties["ScheduleExpression"]
            for rule_target in properties["Targets"]:
                found.schedules.setdefault(target(rule_target["Arn"]), []).append(int(minutes[1]))
        elif resource["Type"] == "AWS::Lambda::Permission" and properties["Principal"] != "events.amazonaws.com":
            found.uncapped.setdefault(target(properties["FunctionName"]), set()).add(properties["Principal"])
    return found


def function_budgets(template: dict[str, Any], evaluated: Evaluated, per_container: int) -> list[FunctionBudget]:
    resources: dict[str, Any] = template["Resources"]
    invoked = invokers(resources)
    budgets = []
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        properties = resource["Properties"]
        reserved = evaluated.value(properties.get("ReservedConcurrentExecutions", NO_VALUE))
        cap: int | None
        if reserved is not NO_VALUE:
            cap, why = int(reserved), "reserved concurrency"
        elif name in invoked.uncapped:
            cap, why = None, f"unreserved; invoked by {', '.join(sorted(invoked.uncapped[name]))}"
        elif name in invoked.sqs_caps:
            caps = invoked.sqs_caps[name]
            cap = None if None in caps else sum(c for c in caps if c is not None)
            why = "SQS MaximumConcurrency"
        elif name in invoked.schedules:
            # Runs of one schedule overlap by their timeout, and each failed one is retried twice on its own.
            timeout_minutes = int(properties.get("Timeout", 3)) / 60
            cap = sum(math.ceil(timeout_minutes / minutes) + 1 + ASYNC_RETRIES for minutes in invoked.schedules[name])
            why = f"schedule: overlapping runs + {ASYNC_RETRIES} retries"
        else:
            raise AssertionError(f"{name}: no invoker found to size its concurrency")
        budgets.append(FunctionBudget(name, cap, why, per_container))
    return budgets


def budget_table(environment: str, budgets: list[FunctionBudget], account: int, limit: int, total: int) -> str:
    lines = [
        f"connection budget, environment {environment!r}",
        f"{'function':<30} {'max concurrency':>15} {'per container':>13} {'total':>6}  why",
    ]
    for budget in budgets:
        concurrency = "account" if budget.max_concurrency is None else str(budget.max_concurrency)
        connections = "-" if budget.connections is None else str(budget.connections)
        lines.append(
            f"{budget.function:<30} {concurrency:>15} {budget.per_container:>13} {connections:>6}  {budget.why}"
        )
    lines.append(f"all functions together run at most min(AccountConcurrencyLimit {account}, their sum) instances")
    lines.append(f"worst case {total} connections per node; limit {limit} ({HEADROOM:.0%} of AtlasConnectionLimit)")
    return "\n".join(lines)


@pytest.mark.parametrize("environment", sorted(deploy_environments()))
def test_the_worst_case_connections_fit_the_atlas_cluster(environment: str, connections_per_container: int) -> None:
    template = translated_template()
    evaluated = Evaluated(template, deploy_environments()[environment])
    budgets = function_budgets(template, evaluated, connections_per_container)
    account = int(evaluated.parameters["AccountConcurrencyLimit"])
    caps = [budget.max_concurrency for budget in budgets]
    instances = account if None in caps else min(account, sum(cap for cap in caps if cap is not None))
    total = instances * connections_per_container
    limit = math.floor(int(evaluated.parameters["AtlasConnectionLimit"]) * HEADROOM)
    table = budget_table(environment, budgets, account, limit, total)
    print(table)

    assert total <= limit, table


def test_a_container_keeps_few_connections(connections_per_container: int) -> None:
    """One invocation at a time per container: a pool of 2 and one monitor (pymongo's defaults: 100 and 2)."""
    assert connections_per_container == 3
