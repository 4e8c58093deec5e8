"""Per-function settings, read from the environment once per container (at cold start)."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field


class ServiceSettings(BaseModel):
    """What every function needs to know about its surroundings.

    ``mongodb_uri`` wins over ``mongodb_secret_id`` so that tests, the local stack and
    `sam local` can point a function straight at a MongoDB; in AWS only the secret is set.
    """

    model_config = ConfigDict(frozen=True)

    service_name: str = Field(min_length=1)
    mongodb_database: str = Field(min_length=1)
    mongodb_uri: str | None = None
    mongodb_secret_id: str | None = None
    event_topic_arn: str | None = None
    aws_endpoint_url: str | None = None
    sender_email: str | None = None

    @classmethod
    def from_env(cls) -> ServiceSettings:
        env = os.environ
        return cls(
            service_name=env.get("POWERTOOLS_SERVICE_NAME", "shop"),
            mongodb_database=env.get("MONGODB_DATABASE", ""),
            mongodb_uri=env.get("MONGODB_URI") or None,
            mongodb_secret_id=env.get("MONGODB_SECRET_ID") or None,
            event_topic_arn=env.get("EVENT_TOPIC_ARN") or None,
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            sender_email=env.get("SENDER_EMAIL") or None,
        )
