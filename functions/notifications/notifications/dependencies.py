"""What the notifications function keeps within a container, built once at the first invocation
(see shop_common.container)."""

from __future__ import annotations

from dataclasses import dataclass

from notifications.mailer import SesMailer
from notifications.repository import NotificationsRepository
from shop_common.container import per_container
from shop_common.mongo import indexed_repository
from shop_common.settings import ServiceSettings


@dataclass(frozen=True)
class Dependencies:
    repository: NotificationsRepository
    mailer: SesMailer

    def warm_up(self) -> None:
        self.mailer.warm_up()


@per_container
def dependencies() -> Dependencies:
    settings = ServiceSettings.from_env()
    if not settings.sender_email:
        raise RuntimeError("SENDER_EMAIL is not set")
    repository = indexed_repository(settings, NotificationsRepository)
    return Dependencies(repository=repository, mailer=SesMailer(settings.sender_email, settings.aws_endpoint_url))
