"""The OpenAPI document (tools.openapi, checked in as docs/openapi.json): current, valid OpenAPI 3,
and complete: every route of template.yaml, with every status the contract
(../shared/contract.md) gives it, its security, and the headers the contract promises."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from devstack.template import load_template
from tools import openapi

CONTRACT = Path(__file__).resolve().parents[3] / "shared" / "contract.md"
ROUTE = re.compile(r"`(GET|POST|PUT|DELETE) (/[^`?\s]*)")
# A rule of the Identity section about one route: "- `POST /users` with a token ...: `403 email_not_verified`".
IDENTITY_RULE = re.compile(r"^- `(GET|POST|PUT|DELETE) (/[^`?\s]*)`(.*(?:\n  .*)*)", re.MULTILINE)
# Routes of contract version 3 that a later issue builds; each goes with that issue.
PENDING = {
    (
        "GET",
        "/inventory",
    ): "A catalog to browse, a sales report built from events (CQRS), and an event archive with replay",
    (
        "GET",
        "/reports/sales",
    ): "A catalog to browse, a sales report built from events (CQRS), and an event archive with replay",
}


@cache
def document() -> dict[str, Any]:
    return openapi.openapi_document()


def operations() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, path_item in document()["paths"].items()
        for method, operation in path_item.items()
    }


def template_routes() -> dict[tuple[str, str], bool]:
    """(method, path) of every Api event of template.yaml -> whether it needs a token."""
    routes = {}
    for resource in load_template()["Resources"].values():
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event["Type"] == "Api":
                properties = event["Properties"]
                public = properties.get("Auth", {}).get("Authorizer") == "NONE"
                routes[(properties["Method"].upper(), properties["Path"])] = not public
    return routes


def contract_section(heading: str) -> str:
    return CONTRACT.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def contract_table(heading: str) -> list[list[str]]:
    """The rows (cells) of the first table under ``## heading`` in the contract."""
    rows = [line for line in contract_section(heading).splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def contract_statuses() -> dict[tuple[str, str], set[int]]:
    """Every status the contract gives each route: its success and errors (HTTP API table), the
    Identity table's (401 without a token, 403 for a route the caller may not use, 404 for what
    is another user's) and its rules about one route (403 for an unverified email on POST /users),
    429 and 503 anywhere, and 400/413/422 for a body that cannot be taken."""
    statuses: dict[tuple[str, str], set[int]] = {}
    for route_cell, success, errors in contract_table("HTTP API"):
        route = ROUTE.search(route_cell)
        assert route is not None, route_cell
        codes = {int(code) for code in re.findall(r"\b[2-5]\d\d\b", f"{success} {errors}")}
        has_body = "`{" in route_cell[route.end() :]  # the route, then its body: `{"name"}`
        if (route.group(1), route.group(2)) in PENDING:
            continue
        statuses[(route.group(1), route.group(2))] = codes | {429, 503} | ({400, 413, 422} if has_body else set())
    for routes_cell, who in contract_table("Identity"):
        for method, path in ROUTE.findall(routes_cell):
            if (method, path) in PENDING:
                continue
            if not who.startswith("anyone"):
                statuses[(method, path)].add(401)
            if "staff only" in who:
                statuses[(method, path)].add(403)
            if "or staff" in who:
                statuses[(method, path)].add(404)
    for method, path, answer in IDENTITY_RULE.findall(contract_section("Identity")):
        statuses[(method, path)] |= {int(code) for code in re.findall(r"\b[2-5]\d\d\b", answer)}
    return statuses


def test_the_checked_in_document_is_current() -> None:
    assert openapi.OUTPUT.read_text() == openapi.render(), "regenerate: .venv/bin/python -m tools.openapi --write"


def test_it_is_a_valid_openapi_3_document() -> None:
    validate(document())
    assert document()["openapi"].startswith("3.")


def test_title_and_the_contracts_version() -> None:
    version = re.search(r"^# Product contract \(version (\d+)\)", CONTRACT.read_text(), flags=re.MULTILINE)
    assert version is not None
    assert (document()["info"]["title"], document()["info"]["version"]) == ("Shop API", version.group(1))


def test_every_route_of_the_template_and_of_the_contract_and_no_other() -> None:
    assert set(operations()) == set(template_routes()) == set(contract_statuses())


@pytest.mark.parametrize("route", sorted(contract_statuses()), ids=" ".join)
def test_every_status_the_contract_gives_a_route(route: tuple[str, str]) -> None:
    documented = {int(status) for status in operations()[route]["responses"]}
    assert contract_statuses()[route] <= documented


def test_every_error_answer_is_the_error_body() -> None:
    for route, operation in operations().items():
        for status, response in operation["responses"].items():
            schema = response["content"]["application/json"]["schema"]
            assert (schema == {"$ref": "#/components/schemas/ErrorBody"}) == (int(status) >= 400), (route, status)
    assert document()["components"]["schemas"]["ErrorBody"]["required"] == ["code", "message"]


def staff_only_routes() -> set[tuple[str, str]]:
    """The routes the contract's Identity table gives to staff only."""
    return {
        (method, path)
        for routes_cell, who in contract_table("Identity")
        if "staff only" in who
        for method, path in ROUTE.findall(routes_cell)
    }


@pytest.mark.parametrize("route", sorted(template_routes()), ids=" ".join)
def test_the_id_token_is_required_where_the_template_puts_the_authorizer(route: tuple[str, str]) -> None:
    """A route behind the authorizer requires the ID token; a staff-only one names the role (OpenAPI
    3.1 lets a requirement list roles), and that is what the edge enforces (shop_common.http)."""
    scheme = document()["components"]["securitySchemes"]["CognitoIdToken"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    needs_token = template_routes()[route]
    roles = ["staff"] if route in staff_only_routes() else []
    assert operations()[route].get("security") == ([{"CognitoIdToken": roles}] if needs_token else None)
    assert ("401" in operations()[route]["responses"]) == needs_token


def test_headers_location_on_201_retry_after_on_503_and_the_idempotency_key() -> None:
    for route, operation in operations().items():
        responses = operation["responses"]
        assert "Retry-After" in responses["503"]["headers"], route
        if "201" in responses:
            assert "Location" in responses["201"]["headers"], route
    [key] = operations()[("POST", "/orders")]["parameters"]
    assert (key["name"], key["in"], key["required"]) == ("Idempotency-Key", "header", False)
    assert key["schema"]["anyOf"][0] == {"type": "string", "minLength": 1, "maxLength": 255}


def test_path_parameters_have_patterns() -> None:
    for route, operation in operations().items():
        names = re.findall(r"\{(\w+)\}", route[1])
        parameters = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "path"}
        assert sorted(parameters) == sorted(names), route
        assert all(parameter["schema"]["pattern"] for parameter in parameters.values()), route


def test_pending_routes_are_in_the_contract_and_not_built_yet() -> None:
    """A pending mark goes with the issue that builds its route: once built, this fails until it is removed."""
    in_contract = {(method, path) for row in contract_table("HTTP API") for method, path in ROUTE.findall(row[0])}
    assert set(PENDING) <= in_contract
    assert not set(PENDING) & (set(template_routes()) | set(operations()))
