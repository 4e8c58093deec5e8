"""What the notifications function keeps within a container, built once at the first invocation."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from notifications.mailer import SesMailer
from notifications.repository import NotificationsRepository
from shop_common.mongo import database
from shop_common.settings import ServiceSettings


@dataclass(frozen=True)
class Dependencies:
    repository: NotificationsRepository
    mailer: SesMailer


@cache
def dependencies() -> Dependencies:
    settings = ServiceSettings.from_env()
    if not settings.sender_email:
        raise RuntimeError("SENDER_EMAIL is not set")
    repository = NotificationsRepository(database(settings))
    repository.ensure_indexes()
    return Dependencies(repository=repository, mailer=SesMailer(settings.sender_email, settings.aws_endpoint_url))
