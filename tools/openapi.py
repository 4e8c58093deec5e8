"""The OpenAPI document of the whole HTTP API, generated from the code.

Each service's Powertools resolver describes its own routes (pydantic models, path patterns,
the ``responses=`` and ``security=`` the routes declare through shop_common.http); this merges
the three into one document, tags each route with its service, and drops the schemas nothing
refers to. docs/openapi.json is its output, checked in and kept current by a test.

    .venv/bin/python -m tools.openapi            # print the document
    .venv/bin/python -m tools.openapi --write    # write docs/openapi.json

Not shipped to Lambda (functions import nothing from here) and not part of the local stack,
which may serve ``openapi_document()`` (with Swagger UI) all the same.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "openapi.json"
SERVICES = ("users", "orders", "inventory")
TITLE = "Shop API"
VERSION = "3"  # the contract's version (../shared/contract.md)
DESCRIPTION = (
    "The shop's HTTP API (contract version 3). Sign in with Amazon Cognito and send the ID token as "
    "`Authorization: Bearer <token>`; only `GET /inventory/{sku}` is public. Every error is JSON: "
    '`{"code", "message"}`, plus `details` for validation errors. A client may send `X-Correlation-Id`; '
    "every response returns the request's."
)


def _import_apis() -> dict[str, Any]:
    """Each service's API module, imported as its Lambda function would (its code and the shared
    layer on the path); importing one touches no network."""
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray SDK needed to describe routes
    for path in [ROOT / "layers" / "shared", *(ROOT / "functions" / service for service in SERVICES)]:
        if str(path) not in sys.path:
            sys.path.append(str(path))
    return {service: importlib.import_module(f"{service}.api") for service in SERVICES}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of the API, as a JSON-ready dict."""
    from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, SecurityScheme

    apis = _import_apis()
    from shop_common.http import ID_TOKEN_SCHEME, ErrorBody

    schemes: dict[str, SecurityScheme] = {
        ID_TOKEN_SCHEME: HTTPBearer(
            bearerFormat="JWT",
            description="The ID token of the shop's Cognito user pool (InitiateAuth with USER_PASSWORD_AUTH).",
        )
    }
    merge = OpenAPIMerge(
        title=TITLE, version=VERSION, description=DESCRIPTION, security_schemes=schemes, on_conflict="error"
    )
    schemas: dict[str, Any] = {}
    merge.add_schema({"components": {"schemas": _schemas_of(ErrorBody)}})  # the routes refer to it by name
    for service, api in apis.items():
        document = api.app.get_openapi_schema(security_schemes=schemes).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        for path_item in document["paths"].values():
            for operation in path_item.values():
                operation["tags"] = [service]
                operation["responses"] = dict(sorted(_declared(operation["responses"]).items()))
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "header":  # Powertools lower-cases it; its title is as declared
                        parameter["name"] = parameter["schema"]["title"]
        _check_no_clash(schemas, document["components"]["schemas"])
        merge.add_schema(document)
    return _without_unused_schemas(json.loads(merge.get_openapi_json_schema()))


def render() -> str:
    """docs/openapi.json as it should read."""
    return json.dumps(openapi_document(), indent=2) + "\n"


def _declared(responses: dict[str, Any]) -> dict[str, Any]:
    """The responses a route declares. Powertools gives every validated route a 422 of its own
    schema; a route that can answer 422 declares it with ErrorBody, and one that cannot (its only
    parameter a path id, which is a 404 when of the wrong shape) does not."""
    own_422 = {"$ref": "#/components/schemas/HTTPValidationError"}
    return {
        status: response
        for status, response in responses.items()
        if response.get("content", {}).get("application/json", {}).get("schema") != own_422
    }


def _schemas_of(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema and those of the models it holds, as OpenAPI components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs", {}), model.__name__: schema}


def _check_no_clash(seen: dict[str, Any], schemas: dict[str, Any]) -> None:
    """The merge keeps one schema per name: two services' different models of one name would
    silently become one."""
    for name, schema in schemas.items():
        if seen.setdefault(name, schema) != schema:
            raise ValueError(f"Two different schemas are named {name!r}; rename one of the models.")


def _without_unused_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """Powertools adds its own validation error schemas; every route answers with ErrorBody instead."""
    schemas = document["components"]["schemas"]
    used: set[str] = set()
    pending: list[Any] = [document["paths"]]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            name = str(node.get("$ref", "")).rpartition("/")[2]
            if name and name not in used:
                used.add(name)
                pending.append(schemas[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    document["components"]["schemas"] = {name: schema for name, schema in schemas.items() if name in used}
    return document


def main(argv: list[str]) -> None:
    text = render()
    if argv == ["--write"]:
        OUTPUT.write_text(text)
        print(f"wrote {OUTPUT.relative_to(ROOT)}")
    elif not argv:
        sys.stdout.write(text)
    else:
        raise SystemExit("usage: python -m tools.openapi [--write]")


if __name__ == "__main__":
    main(sys.argv[1:])
