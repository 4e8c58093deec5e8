"""The operations dashboard (OperationsDashboard), as SAM expands the template: its body is JSON
once CloudFormation substitutes it; it shows the business first, then the machinery; every metric
of namespace Shop on it is one the code counts, under a service the template runs; every function
and every queue of the template is on it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from devstack.template import Attributes, Resolver
from tests.counted_metrics import BUSINESS, counted_metric_names
from tests.sam_translation import translated_template

ROOT = Path(__file__).resolve().parents[2]
STAGE = "dev"
# The API's name as the template sets it (ShopApi's Name): the dimension of API Gateway's metrics.
API_NAME = f"shop-{STAGE}-api"
FUNCTION_METRICS = ("Invocations", "Errors", "Duration", "Throttles", "ConcurrentExecutions")


def substituted(text: str, resources: dict[str, Any]) -> str:
    """``text`` with the variables of an Fn::Sub replaced as CloudFormation would (devstack's Resolver),
    each queue named by a name of our own making here."""
    resolver = Resolver({"Stage": STAGE})
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::SQS::Queue":
            resolver.resources[logical_id] = Attributes(logical_id, {"QueueName": f"queue-{logical_id}"})
    substitution: str = resolver.resolve({"Fn::Sub": text})
    return substitution


@cache
def expanded() -> dict[str, Any]:
    return translated_template()


def resources() -> dict[str, Any]:
    resources: dict[str, Any] = expanded()["Resources"]
    return resources


def widgets() -> list[dict[str, Any]]:
    dashboard = resources()["OperationsDashboard"]
    assert dashboard["Type"] == "AWS::CloudWatch::Dashboard"
    assert dashboard["Properties"]["DashboardName"] == {"Fn::Sub": "shop-${Stage}"}
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)  # no variables map: every ${...} is the stage, the region or a resource
    parsed: list[dict[str, Any]] = json.loads(substituted(body, resources()))["widgets"]
    return parsed


def metrics_of(widget: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, name, dimensions) of each metric a widget draws."""
    drawn = []
    for metric in widget["properties"]["metrics"]:
        namespace, name, *rest = [part for part in metric if not isinstance(part, dict)]
        drawn.append((namespace, name, dict(zip(rest[::2], rest[1::2], strict=True))))
    return drawn


def metric_widgets() -> list[dict[str, Any]]:
    return [widget for widget in widgets() if widget["type"] == "metric"]


def drawn(namespace: str, name: str, dimension: str) -> set[str]:
    """The values of ``dimension`` of metric ``namespace``/``name`` on the dashboard."""
    return {
        dimensions[dimension]
        for widget in metric_widgets()
        for space, metric, dimensions in metrics_of(widget)
        if (space, metric) == (namespace, name) and dimension in dimensions
    }


def services_run() -> set[str]:
    """The POWERTOOLS_SERVICE_NAME of the template's functions: the `service` dimension of their metrics."""
    return {
        resource["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for resource in resources().values()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def test_the_body_is_json_once_substituted_and_every_widget_has_a_place() -> None:
    for widget in widgets():
        assert {"type", "x", "y", "width", "height", "properties"} <= set(widget)
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24


def test_every_shop_metric_on_it_is_counted_by_the_code_under_a_service_the_template_runs() -> None:
    counted, services = counted_metric_names(), services_run()
    shop_metrics = [
        (name, dimensions)
        for widget in metric_widgets()
        for namespace, name, dimensions in metrics_of(widget)
        if namespace == "Shop"
    ]
    assert shop_metrics
    for name, dimensions in shop_metrics:
        assert name in counted, f"{name} is on the dashboard but no code counts it"
        assert set(dimensions) == {"service"} and dimensions["service"] in services


def test_it_shows_the_business_first_then_the_machinery() -> None:
    business = BUSINESS
    kinds = [
        all(namespace == "Shop" and name in business for namespace, name, _ in metrics_of(widget))
        for widget in metric_widgets()
    ]
    assert kinds == sorted(kinds, reverse=True)  # every business widget before any machinery one
    first_machinery = kinds.index(False)
    assert {name for widget in metric_widgets()[:first_machinery] for _, name, _ in metrics_of(widget)} == business
    rows = [widget["y"] for widget in metric_widgets()]
    assert max(rows[:first_machinery]) < min(rows[first_machinery:])  # and above them


def test_every_function_is_on_it_with_each_of_its_metrics() -> None:
    functions = {
        substituted(resource["Properties"]["FunctionName"]["Fn::Sub"], resources())
        for resource in resources().values()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    assert len(functions) == 13
    for metric in FUNCTION_METRICS:
        assert drawn("AWS/Lambda", metric, "FunctionName") == functions, metric


def test_every_queue_is_on_it_main_queues_with_their_depth_and_age_and_every_dead_letter_queue() -> None:
    queues = {name: resource for name, resource in resources().items() if resource["Type"] == "AWS::SQS::Queue"}
    main = {f"queue-{name}" for name, queue in queues.items() if "RedrivePolicy" in queue["Properties"]}
    dead_letter = {f"queue-{name}" for name in queues} - main
    assert len(main) == 3 and len(dead_letter) == 8
    assert drawn("AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName") == main
    assert drawn("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName") == main | dead_letter


def test_the_api_is_shown_by_its_name_and_stage_with_latency_percentiles_and_errors() -> None:
    for metric in ("Latency", "Count", "4XXError", "5XXError"):
        assert drawn("AWS/ApiGateway", metric, "ApiName") == {API_NAME}, metric
        assert drawn("AWS/ApiGateway", metric, "Stage") == {STAGE}, metric
    [latency] = [widget for widget in metric_widgets() if metrics_of(widget)[0][1] == "Latency"]
    stats = {part["stat"] for metric in latency["properties"]["metrics"] for part in metric if isinstance(part, dict)}
    assert stats == {"p50", "p99"}


def test_every_service_is_shown_when_mongodb_is_unavailable_to_it() -> None:
    assert drawn("Shop", "DatabaseUnavailable", "service") == services_run()


def test_its_address_is_an_output() -> None:
    url = expanded()["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    assert "#dashboards/dashboard/${OperationsDashboard}" in url
