"""Shared runtime pieces: connection string from the service's secret, idempotent index setup."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from pymongo import MongoClient

from orders.repository import OrdersRepository
from shop_common import container, mongo
from shop_common.settings import ServiceSettings
from tests.conftest import AwsResources


@pytest.fixture(autouse=True)
def fresh_container() -> Iterator[None]:
    """Each test in a container of its own: nothing read before it is cached (secrets included)."""
    container.release_all()
    yield
    container.release_all()


def test_connection_string_comes_from_the_services_secret_when_no_uri_is_set(aws: AwsResources, mongo_uri: str) -> None:
    secret_arn = boto3.client("secretsmanager").create_secret(
        Name="shop/test/orders/mongodb-uri", SecretString=mongo_uri
    )["ARN"]
    settings = ServiceSettings(service_name="orders", mongodb_database="secret_check", mongodb_secret_id=secret_arn)

    assert mongo.connection_string(settings) == mongo_uri
    assert mongo.database(settings).command("ping")["ok"] == 1


def test_uri_wins_over_the_secret() -> None:
    settings = ServiceSettings(
        service_name="orders", mongodb_database="d", mongodb_uri="mongodb://127.0.0.1:1", mongodb_secret_id="unused"
    )
    assert mongo.connection_string(settings) == "mongodb://127.0.0.1:1"


def test_ensuring_indexes_twice_is_harmless(mongo_client: MongoClient) -> None:
    database = mongo_client["index_check"]
    try:
        repository = OrdersRepository(database)
        repository.ensure_indexes()
        first = sorted(index["name"] for index in database["orders"].list_indexes())
        repository.ensure_indexes()
        assert sorted(index["name"] for index in database["orders"].list_indexes()) == first
        assert "orders_by_user_newest_first" in first
    finally:
        mongo_client.drop_database("index_check")


class LocalEndpoint(BaseHTTPRequestHandler):
    """Answers every GET with ``body`` (JSON) and records the requests' headers."""

    body: dict[str, Any] = {}
    requests: list[dict[str, str]] = []

    def do_GET(self) -> None:
        self.requests.append(dict(self.headers))
        body = json.dumps(self.body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(body: dict[str, Any]) -> Iterator[tuple[int, list[dict[str, str]]]]:
    """A local HTTP endpoint answering ``body``: its port, and the requests it received."""

    class Endpoint(LocalEndpoint):
        pass

    Endpoint.body, Endpoint.requests = body, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], Endpoint.requests
    finally:
        server.shutdown()
        server.server_close()


def test_a_secret_is_read_from_secrets_manager_never_from_a_local_extension(
    aws: AwsResources, mongo_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under SnapStart the Parameters and Secrets extension cannot authenticate a read (its header
    needs AWS_SESSION_TOKEN, which Lambda does not give a SnapStart function), and the functions
    without SnapStart have nobody waiting for the ~200 ms of cold start it would save: no function
    uses it, even with a session token and an extension answering."""
    arn = boto3.client("secretsmanager").create_secret(Name="shop/test/users/uri", SecretString=mongo_uri)["ARN"]
    settings = ServiceSettings(service_name="users", mongodb_database="d", mongodb_secret_id=arn)
    with serving({"Name": arn, "SecretString": "mongodb://from-extension:27017"}) as (port, extension_requests):
        monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(port))
        monkeypatch.setenv("AWS_SESSION_TOKEN", "session-1")

        assert mongo.connection_string(settings) == mongo_uri
    assert extension_requests == []


def test_under_snapstart_a_secret_is_read_with_the_container_credentials(
    aws: AwsResources, mongo_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = boto3.client("secretsmanager").create_secret(Name="shop/test/orders/uri", SecretString=mongo_uri)["ARN"]
    settings = ServiceSettings(service_name="orders", mongodb_database="d", mongodb_secret_id=arn)
    credentials = {
        "AccessKeyId": "ASIACONTAINER",
        "SecretAccessKey": "container-secret",
        "Token": "container-session",
        "Expiration": (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    with serving(credentials) as (port, credential_requests):
        # What Lambda gives a SnapStart function: container credentials, no keys, no session token.
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{port}/2021-04-23/credentials")
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-authorization")

        assert mongo.connection_string(settings) == mongo_uri
    assert [request["Authorization"] for request in credential_requests] == ["container-authorization"]
