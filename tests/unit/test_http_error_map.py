"""The one map from errors to responses (shop_common.http), on a resolver of its own: domain
error categories by status, which errors mean "a dependency could not be reached" (503, retry
later) and which are a bug (500)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from pymongo.errors import (
    AutoReconnect,
    ConfigurationError,
    ConnectionFailure,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from shop_common.errors import Conflict, DomainError, Forbidden, NotFound, Unauthorized, Unprocessable
from shop_common.http import create_resolver
from shop_common.runtime import OutOfTime
from tests.support import FakeLambdaContext, api_event


def wrapped(error: Exception) -> Exception:
    """``error`` as a library wraps it (Powertools idempotency: ``raise ... from error``)."""
    try:
        raise RuntimeError("Failed to save in progress record to idempotency store") from error
    except RuntimeError as wrapper:
        return wrapper


def raised_while_handling(error: Exception) -> Exception:
    """``error`` as the context of another (Powertools parameters: raised in ``except``)."""
    try:
        try:
            raise error
        except Exception:
            raise RuntimeError("could not read the secret")  # noqa: B904 (the implicit chain is the point)
    except RuntimeError as outer:
        return outer


def suppressed(error: Exception) -> Exception:
    """``error`` replaced on purpose (``raise ... from None``): no longer what went wrong."""
    try:
        try:
            raise error
        except Exception:
            raise ValueError("a bug while handling it") from None
    except ValueError as outer:
        return outer


def answer_to(error: Exception) -> tuple[int, dict[str, str], dict[str, Any]]:
    app = create_resolver()

    @app.get("/users/<user_id>")
    def failing(user_id: str) -> None:
        raise error

    response = app.resolve(api_event("api-users-get"), cast(LambdaContext, FakeLambdaContext()))
    headers = {key: values[-1] for key, values in (response.get("multiValueHeaders") or {}).items()}
    return response["statusCode"], headers, json.loads(response["body"])


@pytest.mark.parametrize(
    "error",
    [
        ServerSelectionTimeoutError("No servers found yet"),
        AutoReconnect("connection closed"),
        NetworkTimeout("timed out"),
        ConnectionFailure("refused"),
        TimeoutError("the secrets extension did not answer"),
        wrapped(ServerSelectionTimeoutError("No servers found yet")),
        raised_while_handling(NetworkTimeout("timed out")),
        OutOfTime("Given up after 3 attempts, 0.5 s left in the invocation"),
    ],
    ids=[
        "server-selection",
        "auto-reconnect",
        "network-timeout",
        "connection",
        "timeout",
        "wrapped",
        "context",
        "out-of-time",
    ],
)
def test_an_unreachable_dependency_is_503_with_retry_after(error: Exception) -> None:
    status, headers, body = answer_to(error)
    assert status == 503
    assert body == {"code": "service_unavailable", "message": body["message"]}
    assert int(headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("a bug"),
        OperationFailure("command failed", code=2),
        ConfigurationError("bad connection string"),
        suppressed(AutoReconnect("connection closed")),
    ],
    ids=["bug", "operation-failure", "configuration", "suppressed-context"],
)
def test_any_other_unexpected_error_is_500(error: Exception) -> None:
    status, headers, body = answer_to(error)
    assert (status, body["code"]) == (500, "internal_error")
    assert "Retry-After" not in headers


class AlreadyThere(Conflict):
    code = "already_there"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (Unauthorized("Sign in."), 401, "unauthorized"),
        (Forbidden("Staff only."), 403, "forbidden"),
        (NotFound("No such thing."), 404, "not_found"),
        (AlreadyThere("It is there."), 409, "already_there"),
        (Unprocessable("Not like this."), 422, "unprocessable"),
    ],
)
def test_domain_errors_map_by_category(error: DomainError, status: int, code: str) -> None:
    assert answer_to(error)[0::2] == (status, {"code": code, "message": error.message})
