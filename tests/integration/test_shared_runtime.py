"""Shared runtime pieces: connection string from the service's secret, idempotent index setup."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from pymongo import MongoClient

from devstack.mongod import free_port
from orders.repository import OrdersRepository
from shop_common import container, mongo, secrets
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


class FakeSecretsExtension(BaseHTTPRequestHandler):
    """Answers like the AWS Parameters and Secrets Lambda Extension on localhost."""

    secret_string = ""
    token = ""

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        if self.headers.get("X-Aws-Parameters-Secrets-Token") != self.token or not self.path.startswith(
            "/secretsmanager/get"
        ):
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"Name": query["secretId"][0], "SecretString": self.secret_string}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_the_secrets_extension_is_used_when_the_function_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeSecretsExtension.secret_string, FakeSecretsExtension.token = "mongodb://from-extension:27017", "session-1"
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeSecretsExtension)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(server.server_address[1]))
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-1")
    settings = ServiceSettings(service_name="orders", mongodb_database="d", mongodb_secret_id="shop/dev/orders/uri")
    try:
        assert mongo.connection_string(settings) == "mongodb://from-extension:27017"
        container.release_all()  # another container, whose token the extension refuses: fall back
        monkeypatch.setenv("AWS_SESSION_TOKEN", "someone-else")
        with mock.patch.object(secrets.secrets_provider(), "get", return_value="mongodb://sdk") as sdk:
            assert mongo.connection_string(settings) == "mongodb://sdk"
        sdk.assert_called_once()
    finally:
        server.shutdown()
        server.server_close()


def test_without_the_extension_the_secret_is_read_with_powertools(
    aws: AwsResources, mongo_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-1")
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(free_port()))  # nothing listens there
    arn = boto3.client("secretsmanager").create_secret(Name="shop/test/users/uri", SecretString=mongo_uri)["ARN"]
    settings = ServiceSettings(service_name="users", mongodb_database="d", mongodb_secret_id=arn)
    assert mongo.connection_string(settings) == mongo_uri


def test_an_extension_that_does_not_answer_in_time_fails_the_read_instead_of_adding_a_second_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never answers
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(listener.getsockname()[1]))
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-1")
    settings = ServiceSettings(service_name="orders", mongodb_database="d", mongodb_secret_id="shop/dev/orders/uri")
    try:
        with (
            mock.patch.object(secrets.secrets_provider(), "get", return_value="mongodb://sdk") as sdk,
            pytest.raises(TimeoutError),
        ):
            mongo.connection_string(settings)
        sdk.assert_not_called()
    finally:
        listener.close()
