"""SnapStart hooks on a real mongod: what a function builds before the snapshot (its MongoDB
client, its indexes, its secret) is let go of, and the first request after the restore runs on a
new client, reads the secret again and ensures no index again (once per published version).

The hooks are called as the runtime calls them, in this process: no fork, so no at-fork handler
of pymongo's can do the hooks' work for them."""

from __future__ import annotations

import os
import uuid
from unittest import mock

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from pymongo import MongoClient
from pymongo.errors import InvalidOperation

from shop_common import secrets, snapstart
from shop_common.runtime import Dependencies
from tests.conftest import AwsResources
from tests.support import ServiceRuntime, api_event, command_counter, customer
from users import api as users_api
from users import dependencies as users_dependencies
from users.repository import UsersRepository


def client_of(dependencies: Dependencies[UsersRepository]) -> MongoClient:
    client: MongoClient = dependencies.repository.users.database.client
    return client


def register(users: ServiceRuntime) -> int:
    return users.http(
        users_api.handler, api_event("api-users-create", body={"name": "Restored"}, caller=customer())
    ).status


def test_after_the_restore_the_first_request_runs_on_a_new_mongodb_client(runtimes: dict[str, ServiceRuntime]) -> None:
    users = runtimes["users"]
    with mock.patch.dict(os.environ, users.env):
        snapshot_client = client_of(users_dependencies.dependencies())  # as the rehearsal builds it
        snapstart.before_snapshot(users_dependencies.dependencies)
    snapstart.after_restore()

    with command_counter.recording() as commands:
        assert register(users) == 201

    restored_client = client_of(users_dependencies.dependencies())
    assert restored_client is not snapshot_client
    with pytest.raises(InvalidOperation, match="after close"):
        snapshot_client.admin.command("ping")
    assert restored_client.admin.command("ping")["ok"] == 1
    assert not [command for command in commands if command.endswith(("createIndexes", "listIndexes"))]


def test_after_the_restore_the_connection_string_is_read_from_the_secret_again(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_uri: str
) -> None:
    name = f"shop/test/users/mongodb-uri-{uuid.uuid4().hex[:8]}"
    secret_arn = boto3.client("secretsmanager").create_secret(Name=name, SecretString=mongo_uri)["ARN"]
    users = ServiceRuntime({**runtimes["users"].env, "MONGODB_URI": "", "MONGODB_SECRET_ID": secret_arn})

    with mock.patch.object(SecretsProvider, "_get", autospec=True, side_effect=SecretsProvider._get) as reads:
        assert register(users) == 201
        assert secrets.read_secret(secret_arn) == mongo_uri  # cached by the container...
        assert reads.call_count == 1

        snapstart.after_restore()  # ...until a restore, which may come long after a rotation
        assert register(users) == 201

    assert reads.call_count == 2
