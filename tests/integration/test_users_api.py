"""Users API, called in-process with the sample API Gateway events, on the real mongod and moto."""

from __future__ import annotations

import json

import boto3
import pytest
from pymongo import MongoClient

from tests.conftest import AwsResources
from tests.support import ServiceRuntime, api_event
from users import api


def receive_all(queue_url: str) -> list[dict]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    return messages.get("Messages", [])


def test_create_user_returns_201_with_location_and_lowercased_email(runtimes: dict[str, ServiceRuntime]) -> None:
    users = runtimes["users"]

    response = users.http(api.handler, api_event("api-users-create"))

    assert response.status == 201
    assert response.body["email"] == "ada@example.com"
    assert response.body["name"] == "Ada Lovelace"
    assert response.body["created_at"].endswith("Z")
    assert response.headers["Location"] == f"/users/{response.body['user_id']}"


def test_a_json_body_sent_with_a_form_content_type_is_still_read_as_json(runtimes: dict[str, ServiceRuntime]) -> None:
    event = api_event("api-users-create", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert runtimes["users"].http(api.handler, event).status == 201


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


def test_duplicate_email_in_any_case_is_409_email_taken(runtimes: dict[str, ServiceRuntime]) -> None:
    users = runtimes["users"]
    users.http(api.handler, api_event("api-users-create", body={"email": "grace@example.com", "name": "Grace"}))

    again = users.http(api.handler, api_event("api-users-create", body={"email": "GRACE@example.COM", "name": "G"}))

    assert again.status == 409
    assert again.body["code"] == "email_taken"


def test_new_user_is_announced_with_user_registered(
    runtimes: dict[str, ServiceRuntime], aws: AwsResources, mongo_client: MongoClient
) -> None:
    users = runtimes["users"]
    created = users.http(api.handler, api_event("api-users-create", headers={"X-Correlation-Id": "corr-42"})).body

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
        (json.dumps({"email": "a@example.com", "name": "A", "admin": True}), 422, "validation_error"),
        (json.dumps({"email": {"$gt": ""}, "name": "A"}), 422, "validation_error"),
        (json.dumps({"email": "a@example.com", "name": {"$ne": None}}), 422, "validation_error"),
        (json.dumps({"email": "not-an-email", "name": "A"}), 422, "validation_error"),
        (json.dumps({"email": "a@example.com", "name": ""}), 422, "validation_error"),
        (json.dumps({"email": "a@example.com", "name": "x" * 101}), 422, "validation_error"),
        (json.dumps({"email": "a@example.com"}), 422, "validation_error"),
        (json.dumps(["a@example.com", "A"]), 422, "validation_error"),
        ("", 422, "validation_error"),
        (json.dumps({"email": "a@example.com", "name": "x" * (70 * 1024)}), 413, "payload_too_large"),
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
