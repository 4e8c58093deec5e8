"""The services' surroundings for benchmarks: a real mongod, a moto server, localstripe (in a
process of its own, as the local stack runs it), seeded data."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer
from pymongo import MongoClient

from devstack.mongod import MongoServer, free_port
from devstack.stripe_server import API_KEY as STRIPE_API_KEY
from devstack.stripe_server import StripeServer

ROOT = Path(__file__).resolve().parent.parent
SENDER = "bench@example.com"
USER_ID = "b0b0b0b0-0000-4000-8000-000000000001"
USER_EMAIL = "bench@example.com"
SERVICES = ("users", "orders", "inventory", "payments", "notifications")
ORDER_ID = "0a0a0a0a-0000-4000-8000-000000000001"


@dataclass
class BenchEnvironment:
    mongodb_uri: str
    aws_endpoint_url: str
    topic_arn: str
    prefix: str
    stripe_url: str

    def service_env(self, service: str) -> dict[str, str]:
        stripe = {"STRIPE_API_KEY": STRIPE_API_KEY, "STRIPE_API_BASE": self.stripe_url} if service == "payments" else {}
        return {
            **stripe,
            "POWERTOOLS_SERVICE_NAME": service,
            "POWERTOOLS_METRICS_NAMESPACE": "Shop",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "MONGODB_URI": self.mongodb_uri,
            "MONGODB_DATABASE": f"{self.prefix}_{service}",
            "EVENT_TOPIC_ARN": self.topic_arn,
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "SENDER_EMAIL": SENDER,
        }

    def seed(self) -> None:
        client: MongoClient[dict[str, object]] = MongoClient(self.mongodb_uri, tz_aware=True)
        now = datetime.now(UTC)
        client[f"{self.prefix}_users"]["users"].insert_one(
            {"_id": USER_ID, "email": USER_EMAIL, "name": "Bench", "created_at": now, "pending_events": []}
        )
        orders = client[f"{self.prefix}_orders"]
        orders["known_users"].insert_one({"_id": USER_ID, "email": USER_EMAIL})
        for index in range(30):
            orders["orders"].insert_one(
                {
                    "_id": ORDER_ID if index == 0 else str(uuid.uuid4()),
                    "user_id": USER_ID,
                    "items": [{"sku": "BOOK-1", "quantity": 1}],
                    "payment_method": "pm_card_visa",
                    "status": "PENDING",
                    "reason": None,
                    "total_cents": None,
                    "created_at": now,
                    "updated_at": now,
                    "history": [{"status": "PENDING", "at": now, "reason": None}],
                    "pending_events": [],
                }
            )
        for sku in ("BOOK-1", "PEN-7"):
            client[f"{self.prefix}_inventory"]["products"].insert_one(
                {"_id": sku, "name": sku, "unit_price_cents": 250, "available": 10_000_000, "reserved": 0}
            )
        client[f"{self.prefix}_notifications"]["contacts"].insert_one(
            {"_id": USER_ID, "email": USER_EMAIL, "name": "Bench"}
        )
        client.close()


@contextmanager
def bench_environment() -> Iterator[BenchEnvironment]:
    with tempfile.TemporaryDirectory(prefix="shop-bench-") as workdir:
        mongo = None
        uri = os.environ.get("MONGODB_URI")
        if not uri:
            mongo = MongoServer(Path(workdir) / "mongo")
            uri = mongo.start()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
        moto.start()
        stripe = StripeServer(free_port())
        stripe_url = stripe.start(Path(workdir) / "localstripe.log")
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        session = {
            "endpoint_url": endpoint,
            "region_name": "eu-west-1",
            "aws_access_key_id": "b",
            "aws_secret_access_key": "b",
        }
        topic_arn = boto3.client("sns", **session).create_topic(Name="bench-events")["TopicArn"]
        boto3.client("ses", **session).verify_email_identity(EmailAddress=SENDER)
        environment = BenchEnvironment(uri, endpoint, topic_arn, f"bench{uuid.uuid4().hex[:8]}", stripe_url)
        environment.seed()
        try:
            yield environment
        finally:
            client: MongoClient[dict[str, object]] = MongoClient(uri)
            for service in SERVICES:
                client.drop_database(f"{environment.prefix}_{service}")
            client.close()
            stripe.stop()
            moto.stop()
            if mongo is not None:
                mongo.stop()


def write_event(directory: Path, event: dict[str, object]) -> Path:
    path = directory / f"{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(event))
    return path
