"""MONGODB-AWS: Atlas signs a function in with its IAM role, so its connection string holds no password.

Nothing here reaches Atlas or AWS: the client's settings, the library the driver signs in with,
the credentials it caches, and the role ARNs the stack gives out for the Atlas database users.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

from shop_common.container import release_all
from shop_common.mongo import client_for
from tests.sam_translation import translated_template

# Nothing listens on port 1: the client's monitors fail quietly in the background; no test waits on them.
IAM_URI = "mongodb://127.0.0.1:1/?authMechanism=MONGODB-AWS&authSource=%24external"


@pytest.fixture(autouse=True)
def new_container() -> Iterator[None]:
    release_all()
    yield
    release_all()


def test_a_connection_string_without_a_password_signs_in_with_the_function_role() -> None:
    # pymongo 4 exposes a client's credentials only on its pool options (no public accessor).
    credentials = client_for(IAM_URI, "orders").options.pool_options._credentials

    assert credentials is not None
    assert credentials.mechanism == "MONGODB-AWS"
    assert (credentials.username, credentials.password) == (None, None)  # from the role, at sign-in


def test_the_driver_has_its_aws_sign_in() -> None:
    """What pymongo imports at a MONGODB-AWS sign-in (the dependencies layer ships it: pymongo[aws])."""
    auth = importlib.import_module("pymongo_auth_aws.auth")

    assert callable(auth.aws_temp_credentials)


def test_letting_the_client_go_forgets_the_role_credentials_it_signed_in_with() -> None:
    """The driver caches them per process: a container restored from a SnapStart snapshot would
    sign in with those of the container that took the snapshot (release_all runs before the snapshot
    and after each restore)."""
    auth = importlib.import_module("pymongo_auth_aws.auth")
    client_for(IAM_URI, "orders")
    auth.set_use_cached_credentials(True)
    unexpiring = auth.AwsCredential("AKIA", "secret", "token", refresh_needed=lambda buffer_seconds: False)
    auth.set_cached_credentials(unexpiring)

    release_all()

    assert auth.get_cached_credentials() is None


def test_every_function_role_arn_is_an_output() -> None:
    """Atlas maps each role to a database user (its ARN), so the stack names every role a function runs as."""
    template = translated_template()
    roles = {
        resource["Properties"]["Role"]["Fn::GetAtt"][0]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    outputs: dict[str, Any] = template["Outputs"]
    arns_given = {
        output["Value"]["Fn::GetAtt"][0]
        for output in outputs.values()
        if isinstance(output["Value"], dict) and output["Value"].get("Fn::GetAtt", [None, None])[1] == "Arn"
    }

    assert len(roles) == 13
    assert sorted(roles - arns_given) == []
