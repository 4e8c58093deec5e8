"""The naive baseline for cold starts: everything imported and created eagerly at import.

What a first Lambda function often looks like: boto3, pymongo, pydantic, Powertools Logger,
Tracer, Metrics and the REST resolver imported up front, an SNS client and a MongoDB client
created at import, and a handler that reads one document.
"""

import os
from typing import Any

import boto3
import pydantic  # noqa: F401 (imported eagerly on purpose: that is the baseline)
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from pymongo import MongoClient

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver()
sns = boto3.client("sns")
client: MongoClient[dict[str, Any]] = MongoClient(os.environ["MONGODB_URI"])
users = client[os.environ["MONGODB_DATABASE"]]["users"]


@app.get("/users/<user_id>")
def get_user(user_id: str) -> dict[str, Any]:
    user = users.find_one({"_id": user_id}) or {}
    return {"user_id": user_id, "found": bool(user)}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
