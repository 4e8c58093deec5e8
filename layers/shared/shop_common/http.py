"""The HTTP edge shared by every API function: who may call a route, then its body, then its
parameters, and one map from errors to responses.

A request is judged in the contract's order, whatever follows: the caller first (401 without one
on a route behind the authorizer, 403 for a customer on a staff-only route), then the body before
anything parses it (413 too large, 400 nested too deep), then its parsing (400 not JSON, or a
number of more digits than Python converts) and validation (404 for a path id of the wrong shape,
as for one that names nothing; else 422).

Every error body is ``{"code", "message"}`` (plus ``details`` for validation errors) and
never a stack trace: domain errors map by category, an unreachable dependency
(MongoDB, or the secret holding its connection string) is a 503 with ``Retry-After``, and
anything else unexpected is a logged 500 with a generic body.

Routes declare the same answers for the OpenAPI document: ``errors(...)`` gives the ``responses=``
entries of their error statuses, ``created(...)`` that of a 201 with its ``Location``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseHeader
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from shop_common.errors import Conflict, DomainError, Forbidden, NotFound, Unauthorized, Unprocessable
from shop_common.identity import STAFF_GROUP, caller_of
from shop_common.runtime import within_invocation
from shop_common.unavailable import judged_unavailable

logger = Logger(child=True)

MAX_BODY_BYTES = 64 * 1024
# Far beyond any body of the API (an order nests 3 deep), far below the parser's recursion limit.
MAX_NESTING_DEPTH = 32
CORRELATION_HEADER = "X-Correlation-Id"
# Long enough for a replica set election or a network blip to pass.
RETRY_AFTER_SECONDS = 5

# The one map from domain error categories to HTTP statuses.
DOMAIN_ERROR_STATUS: dict[type[DomainError], int] = {
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Unprocessable: 422,
}


class ValidationIssue(BaseModel):
    loc: list[str]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error answer of the API, whoever gives it (a function or API Gateway)."""

    code: str
    message: str
    details: list[ValidationIssue] | None = None


# Routes refer to ErrorBody's schema by name, and the document generator (tools.openapi) adds it:
# with `{"model": ErrorBody}` instead, Powertools would build a pydantic field per error status of
# a route at its first request, about 15 ms of cold start for POST /orders alone.
ERROR_BODY_SCHEMA = {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}


# The security scheme of the OpenAPI document: the Cognito ID token as a bearer token.
ID_TOKEN_SCHEME = "CognitoIdToken"
Security = list[dict[str, list[str]]]
# The `security=` of every route behind the API's Cognito authorizer: any signed-in caller...
SIGNED_IN: Security = [{ID_TOKEN_SCHEME: []}]
# ...or staff only (OpenAPI 3.1 lets a requirement name the roles it needs). The edge enforces what
# a route declares, before it reads the request (RequestGate).
STAFF_ONLY: Security = [{ID_TOKEN_SCHEME: [STAFF_GROUP]}]

ERROR_DESCRIPTIONS = {
    400: "`invalid_json`: the body is not JSON; `nesting_too_deep`: it nests arrays or objects over 32 levels; "
    "`number_too_long`: it holds a number of thousands of digits.",
    401: "`unauthorized`: no ID token, or one that is invalid or expired.",
    403: "`forbidden`: the caller may not do this.",
    404: "`not_found`: no such resource (or an id that cannot name one), or not one the caller may see.",
    413: "`payload_too_large`: the body is over 64 KiB.",
    422: "`validation_error`: the request is not valid (`details` says where).",
    429: "`too_many_requests`: throttled by API Gateway.",
    503: "`service_unavailable`: a dependency is unreachable; retry after `Retry-After` seconds.",
}
# What any route may answer: the edge checks every request's body (size, nesting) before validation,
# API Gateway throttles every route, and MongoDB may be unreachable.
EVERY_ROUTE_ERRORS = (400, 413, 429, 503)
# What a route with a JSON body may answer about the body itself.
BODY_ERRORS = (400, 413, 422)


def errors(*statuses: int | tuple[int, str]) -> dict[int, OpenAPIResponse]:
    """The `responses=` entries (OpenAPI) of a route's error statuses, plus those every route has.
    A status comes alone (its general description) or as ``(status, "what it means here")``."""
    described = dict.fromkeys(EVERY_ROUTE_ERRORS, "")
    for status in statuses:
        code, description = status if isinstance(status, tuple) else (status, "")
        if description or code not in described:
            described[code] = description
    declared: dict[int, OpenAPIResponse] = {}
    for status, description in sorted(described.items()):
        response: OpenAPIResponse = {
            "description": description or ERROR_DESCRIPTIONS[status],
            "content": {content_types.APPLICATION_JSON: {"schema": ERROR_BODY_SCHEMA}},
        }
        if status == 503:
            response["headers"] = {
                "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
            }
        declared[status] = response
    return declared


def created(description: str) -> dict[int, OpenAPIResponse]:
    """The `responses=` entry (OpenAPI) of a 201 whose body is the route's return type."""
    location: OpenAPIResponseHeader = {"description": "The path of the resource created.", "schema": {"type": "string"}}
    return {201: {"description": description, "headers": {"Location": location}}}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, content_types.APPLICATION_JSON, json.dumps(body), headers=headers)


def error_response(
    status: int, code: str, message: str, details: list[Any] | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return json_response(status, body, headers)


def status_for(error: DomainError) -> int:
    for category, status in DOMAIN_ERROR_STATUS.items():
        if isinstance(error, category):
            return status
    return 400


class RefusedBody(Exception):
    """A request body the edge will not take, whatever the route: it says how to answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def ensure_may_call(event: Mapping[str, Any], security: Security | None) -> None:
    """Refuses a caller who may not use a route at all, by the ``security=`` it declares: none is
    public, SIGNED_IN needs a caller (else Unauthorized), STAFF_ONLY a member of staff (else Forbidden)."""
    if not security:
        return
    caller = caller_of(event)
    roles = {role for requirement in security for scheme_roles in requirement.values() for role in scheme_roles}
    if STAFF_GROUP in roles and not caller.is_staff:
        raise Forbidden("Only staff may do this.")


class RequestGate(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, which runs before any middleware of ours, preceded by what
    must be judged before the request is read: the caller (a customer on a staff-only route is a 403
    whatever the body), then the body's size and nesting (before a parser recurses into it)."""

    def handler(self, app: Any, next_middleware: NextMiddleware) -> Response:
        event = app.current_event
        ensure_may_call(event, app.context["_route"].security)  # None on Powertools' not-found route
        refuse_unreadable_body(event.body)
        return super().handler(app, next_middleware)


def parse_json_body(text: str) -> Any:
    """The body as JSON. json.loads refuses an integer of more digits than Python converts
    (``sys.get_int_max_str_digits()``, 4300) with a plain ValueError, not a JSONDecodeError: no
    field takes such a number, so the body is refused like one that is not JSON, not left to be a 500."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise  # Powertools makes it a RequestValidationError: invalid_json
    except ValueError as error:
        message = f"The request body holds a number of over {sys.get_int_max_str_digits()} digits."
        raise RefusedBody(400, "number_too_long", message) from error


def create_resolver() -> APIGatewayRestResolver:
    """A REST resolver with pydantic validation, the request gate and the shared error map installed."""
    app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json_body)
    # Powertools puts its request validation first in every route's middleware stack, before any of
    # app.use(): the gate takes its place, so that the caller and the body's limits are judged first.
    app._request_validation_middleware = RequestGate()

    @app.exception_handler(RequestValidationError)
    def on_validation_error(error: RequestValidationError) -> Response:
        details = [
            {"loc": [str(part) for part in item.get("loc", ())], "msg": item.get("msg"), "type": item.get("type")}
            for item in error.errors()
        ]
        if any(item["type"] == "json_invalid" for item in details):
            return error_response(400, "invalid_json", "The request body is not valid JSON.")
        if any(item["loc"][:1] == ["path"] for item in details):
            return error_response(404, "not_found", "No such resource.")  # an id of the wrong shape names nothing
        return error_response(422, "validation_error", "The request is not valid.", details)

    @app.exception_handler(RefusedBody)
    def on_refused_body(error: RefusedBody) -> Response:
        return error_response(error.status, error.code, error.message)

    @app.exception_handler(DomainError)
    def on_domain_error(error: DomainError) -> Response:
        return error_response(status_for(error), error.code, error.message)

    @app.not_found
    def on_not_found(_: Exception) -> Response:
        return error_response(404, "not_found", "No such resource.")

    @app.exception_handler(Exception)
    def on_unexpected(error: Exception) -> Response:
        if judged_unavailable(error):
            logger.exception("A dependency is unavailable")
            return error_response(
                503,
                "service_unavailable",
                "The service is temporarily unavailable; please retry later.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        logger.exception("Unhandled error")
        return error_response(500, "internal_error", "Something went wrong; please retry later.")

    return app


def location_of(event: Mapping[str, Any], resource_id: str) -> str:
    """The ``Location`` of a resource created by a POST to a collection: the collection's path as
    the client called it, then the new id. ``requestContext.path`` is that path (the stage, or a
    custom domain's base path, included); ``path`` is the resource's within the API (no stage)."""
    context = event.get("requestContext") or {}
    called = context.get("path") or event.get("path") or ""
    return f"{called.rstrip('/')}/{resource_id}"


def correlation_id_of(event: dict[str, Any]) -> str:
    """The caller's ``X-Correlation-Id`` if it sent one, else API Gateway's request id."""
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    supplied = headers.get(CORRELATION_HEADER.lower())
    if supplied and len(supplied) <= 200:
        return str(supplied)
    return str((event.get("requestContext") or {}).get("requestId") or "unknown")


# A JSON string, escapes included. Possessive, and an unterminated one runs to the end, so that
# scanning stays linear whatever the body.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*+"?', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def is_nested_too_deep(body: str) -> bool:
    """Whether arrays and objects nest more than MAX_NESTING_DEPTH deep, brackets inside
    strings aside. One linear pass, before a parser recurses once per level (64 KiB of
    ``[`` would exhaust Python's stack)."""
    if body.count("[") + body.count("{") <= MAX_NESTING_DEPTH:
        return False  # too few brackets to nest that deep: most bodies stop here
    depth = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub("", body)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_NESTING_DEPTH:
            return True
    return False


def refuse_unreadable_body(body: str | bytes | None) -> None:
    """Refuses a body over the size limit (413) or nesting too deep (400), before anything parses it."""
    body = body or ""
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_BODY_BYTES:
        raise RefusedBody(413, "payload_too_large", "The request body is over 64 KiB.")
    if is_nested_too_deep(body if isinstance(body, str) else body.decode(errors="replace")):
        message = f"The request body nests arrays or objects more than {MAX_NESTING_DEPTH} levels deep."
        raise RefusedBody(400, "nesting_too_deep", message)


def with_correlation_header(response: dict[str, Any], correlation_id: str) -> dict[str, Any]:
    response.setdefault("multiValueHeaders", {})[CORRELATION_HEADER] = [correlation_id]
    return response


def as_json_request(event: dict[str, Any]) -> dict[str, Any]:
    """The API speaks JSON only: a body is read as JSON whatever Content-Type the client sent
    (curl -d sends a form type), instead of being parsed as a form and failing obscurely."""
    if not event.get("body"):
        return event
    headers = {key: value for key, value in (event.get("headers") or {}).items() if key.lower() != "content-type"}
    multi = {
        key: value for key, value in (event.get("multiValueHeaders") or {}).items() if key.lower() != "content-type"
    }
    headers["Content-Type"] = content_types.APPLICATION_JSON
    multi["Content-Type"] = [content_types.APPLICATION_JSON]
    return {**event, "headers": headers, "multiValueHeaders": multi}


ApiHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def make_api_handler(app: APIGatewayRestResolver, logger: Logger, tracer: Any, metrics: Metrics) -> ApiHandler:
    """The Lambda handler of an API function: Powertools logging, tracing and metrics around
    one request, whose correlation id goes into every log line, then routing."""

    @logger.inject_lambda_context(log_event=False)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    @within_invocation  # a committed write publishes at once only if that can finish in time
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        correlation_id = correlation_id_of(event)
        logger.set_correlation_id(correlation_id)
        response = app.resolve(as_json_request(event), context)
        return with_correlation_header(response, correlation_id)

    return handler
