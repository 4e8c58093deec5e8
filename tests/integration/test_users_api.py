"""Users API, called in-process with the sample API Gateway events, on the real mongod and moto.
Callers register their own profile: its id is the token's sub, its email the token's."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import boto3
import moto.cognitoidp
import pytest
from joserfc.jwk import KeySet
from pymongo import MongoClient

from devstack.authorizer import CognitoAuthorizer
from devstack.demo import sign_in
from shop_common.identity import Caller
from tests.conftest import AwsResources
from tests.support import ADA, GRACE, Response, ServiceRuntime, api_event, customer, staff_member
from users import api


def receive_all(queue_url: str) -> list[dict]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    return messages.get("Messages", [])


def test_create_user_registers_the_caller_with_the_tokens_sub_and_lowercased_email(
    runtimes: dict[str, ServiceRuntime],
) -> None:
    users = runtimes["users"]

    response = users.http(api.handler, api_event("api-users-create"))

    assert response.status == 201
    assert response.body["user_id"] == ADA.user_id
    assert response.body["email"] == "ada@example.com"  # the token says Ada@Example.com
    assert response.body["name"] == "Ada Lovelace"
    assert response.body["created_at"].endswith("Z")
    assert response.headers["Location"] == f"/dev/users/{ADA.user_id}"  # the sample's stage: dev


@pytest.mark.parametrize("called", ["/dev/users", "/shop/v1/users", "/users"], ids=["stage", "base-path", "root"])
def test_location_is_the_profiles_path_as_the_client_called_it(
    runtimes: dict[str, ServiceRuntime], called: str
) -> None:
    event = api_event("api-users-create")
    event["requestContext"]["path"] = called
    response = runtimes["users"].http(api.handler, event)
    assert (response.status, response.headers["Location"]) == (201, f"{called}/{ADA.user_id}")


def test_a_json_body_sent_with_a_form_content_type_is_still_read_as_json(runtimes: dict[str, ServiceRuntime]) -> None:
    event = api_event("api-users-create", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert runtimes["users"].http(api.handler, event).status == 201


def get_user(users: ServiceRuntime, user_id: str, caller: Caller) -> Response:
    return users.http(api.handler, api_event("api-users-get", path_params={"user_id": user_id}, caller=caller))


def test_get_user_returns_what_was_created(runtimes: dict[str, ServiceRuntime]) -> None:
    users = runtimes["users"]
    created = users.http(api.handler, api_event("api-users-create")).body

    fetched = users.http(api.handler, api_event("api-users-get", path_params={"user_id": created["user_id"]}))

    assert fetched.status == 200
    assert fetched.body == created


def test_get_unknown_user_is_404_not_found(runtimes: dict[str, ServiceRuntime]) -> None:
    response = runtimes["users"].http(api.handler, api_event("api-users-get"))
    assert response.status == 404
    assert response.body["code"] == "not_found"


def test_another_users_profile_is_404_exactly_as_if_it_did_not_exist(runtimes: dict[str, ServiceRuntime]) -> None:
    users = runtimes["users"]
    assert users.http(api.handler, api_event("api-users-create")).status == 201
    stranger = customer("stranger")

    existing = get_user(users, ADA.user_id, stranger)
    missing = get_user(users, "no-such-user", stranger)

    assert (existing.status, existing.body["code"]) == (404, "not_found")
    assert existing.body["message"] == f"No user has id {ADA.user_id!r}."
    assert missing.body == {**existing.body, "message": "No user has id 'no-such-user'."}


def test_staff_read_any_profile(runtimes: dict[str, ServiceRuntime]) -> None:
    users = runtimes["users"]
    created = users.http(api.handler, api_event("api-users-create")).body

    for staff in (GRACE, staff_member()):
        fetched = get_user(users, ADA.user_id, staff)
        assert (fetched.status, fetched.body) == (200, created)


def test_registering_twice_is_409_already_registered_and_keeps_the_profile(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources
) -> None:
    users = runtimes["users"]
    first = users.http(api.handler, api_event("api-users-create"))
    receive_all(aws.queue_urls["orders"])

    again = users.http(api.handler, api_event("api-users-create", body={"name": "Someone Else"}))

    assert (again.status, again.body["code"]) == (409, "already_registered")
    assert get_user(users, ADA.user_id, ADA).body == first.body
    assert receive_all(aws.queue_urls["orders"]) == []  # no second UserRegistered


@pytest.mark.parametrize("email_verified", ["false", None], ids=["false", "absent"])
def test_a_token_whose_email_is_not_verified_is_403_email_not_verified_and_registers_nothing(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient, email_verified: str | None
) -> None:
    """A customer who changed their own email attribute to someone else's and signed in again
    holds a token saying ``email_verified: false`` (or, from a client that cannot read the
    claim, nothing): the shop must not write to that address a name the customer chose."""
    users = runtimes["users"]
    event = api_event("api-users-create", body={"name": "Your bank"})
    claims = event["requestContext"]["authorizer"]["claims"]
    claims.pop("email_verified")
    if email_verified is not None:
        claims["email_verified"] = email_verified

    response = users.http(api.handler, event)

    assert response.status == 403
    assert response.body == {"code": "email_not_verified", "message": response.body["message"]}
    assert "verif" in response.body["message"]
    assert mongo_client[users.env["MONGODB_DATABASE"]]["users"].count_documents({}) == 0
    assert receive_all(aws.queue_urls["orders"]) == []  # no UserRegistered, so no welcome email


def test_a_user_signed_up_as_locally_registers_with_the_claims_of_the_local_pools_id_token(
    runtimes: dict[str, ServiceRuntime],
) -> None:
    """The local sign-up (devstack's, for the demo and `devstack token`) on the pool provisioned from
    the template, its ID token verified as the local API verifies it: the app client's
    ReadAttributes reached moto, so the token says the email is verified."""
    cognito = boto3.client("cognito-idp")
    [pool] = cognito.list_user_pools(MaxResults=1)["UserPools"]
    [client] = cognito.list_user_pool_clients(UserPoolId=pool["Id"], MaxResults=1)["UserPoolClients"]
    stack = {"aws_endpoint_url": None, "user_pool_id": pool["Id"], "user_pool_client_id": client["ClientId"]}
    with gzip.open(Path(moto.cognitoidp.__file__).parent / "resources" / "jwks-public.json.gz") as public:
        authorizer = CognitoAuthorizer(KeySet.import_key_set(json.load(public)), pool["Id"], {client["ClientId"]})

    claims = authorizer.claims("Bearer " + sign_in(stack, "Pool@Example.com"))
    assert claims is not None
    event = api_event("api-users-create")
    event["requestContext"]["authorizer"] = {"claims": claims}
    response = runtimes["users"].http(api.handler, event)

    assert claims["email_verified"] == "true"
    assert (response.status, response.body["user_id"], response.body["email"]) == (
        201,
        claims["sub"],
        "pool@example.com",
    )


def test_two_callers_with_one_email_in_any_case_each_get_a_profile(runtimes: dict[str, ServiceRuntime]) -> None:
    """Cognito keeps emails unique within the pool; two subs with one email happen only when a
    Cognito user was deleted and the email signed up again, and that person must not be locked out."""
    users = runtimes["users"]
    before = Caller(user_id="former-sub", email="Grace@Example.com", is_staff=False, email_verified=True)
    after = Caller(user_id="new-sub", email="grace@example.COM", is_staff=False, email_verified=True)

    responses = [users.http(api.handler, api_event("api-users-create", caller=caller)) for caller in (before, after)]

    assert [(r.status, r.body["user_id"], r.body["email"]) for r in responses] == [
        (201, "former-sub", "grace@example.com"),
        (201, "new-sub", "grace@example.com"),
    ]


def test_the_former_unique_email_index_is_dropped(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient
) -> None:
    users = runtimes["users"]
    collection = mongo_client[users.env["MONGODB_DATABASE"]]["users"]
    collection.create_index("email", unique=True, name="email_unique")  # as databases made before have it

    assert users.http(api.handler, api_event("api-users-create")).status == 201
    assert "email_unique" not in collection.index_information()


def test_new_user_is_announced_with_user_registered(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    users = runtimes["users"]
    created = users.http(api.handler, api_event("api-users-create", headers={"X-Correlation-Id": "corr-42"})).body
    assert created["user_id"] == ADA.user_id

    messages = receive_all(aws.queue_urls["orders"])
    assert len(messages) == 1
    event = json.loads(messages[0]["Body"])
    assert messages[0]["MessageAttributes"]["event_type"]["StringValue"] == "UserRegistered"
    assert event["event_type"] == "UserRegistered"
    assert event["correlation_id"] == "corr-42"
    assert event["source"] == "users"
    assert event["data"] == {"user_id": created["user_id"], "email": created["email"], "name": created["name"]}
    # published, so nothing is left in the outbox
    stored = mongo_client[users.env["MONGODB_DATABASE"]]["users"].find_one({"_id": created["user_id"]})
    assert stored is not None
    assert stored["pending_events"] == []


@pytest.mark.parametrize(
    ("raw_body", "status", "code"),
    [
        ("{not json", 400, "invalid_json"),
        (json.dumps({"name": "A", "admin": True}), 422, "validation_error"),
        (json.dumps({"name": "A", "email": "a@example.com"}), 422, "validation_error"),  # the token says it
        (json.dumps({"name": "A", "user_id": "someone-else"}), 422, "validation_error"),  # the token says it
        (json.dumps({"name": {"$ne": None}}), 422, "validation_error"),
        (json.dumps({"name": ""}), 422, "validation_error"),
        (json.dumps({"name": "   "}), 422, "validation_error"),
        (json.dumps({"name": "x" * 101}), 422, "validation_error"),
        (json.dumps({}), 422, "validation_error"),
        (json.dumps(["A"]), 422, "validation_error"),
        ("", 422, "validation_error"),
        (json.dumps({"name": "x" * (70 * 1024)}), 413, "payload_too_large"),
    ],
)
def test_bad_bodies_get_a_clear_4xx_and_store_nothing(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient, raw_body: str, status: int, code: str
) -> None:
    users = runtimes["users"]

    response = users.http(api.handler, api_event("api-users-create", raw_body=raw_body))

    assert response.status == status
    assert response.body["code"] == code
    assert isinstance(response.body["message"], str)
    assert "Traceback" not in json.dumps(response.body)
    assert mongo_client[users.env["MONGODB_DATABASE"]]["users"].count_documents({}) == 0
