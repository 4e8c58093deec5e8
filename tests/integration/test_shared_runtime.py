"""Shared runtime pieces: connection string from the service's secret, idempotent index setup."""

from __future__ import annotations

import boto3
from pymongo import MongoClient

from orders.repository import OrdersRepository
from shop_common import mongo
from shop_common.settings import ServiceSettings
from tests.conftest import AwsResources


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
