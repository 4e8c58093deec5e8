"""The payments service's settings and per-container dependencies (see shop_common.runtime)."""

from __future__ import annotations

import os
from functools import partial
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from payments.repository import PaymentsRepository
from payments.service import PaymentsService
from shop_common.container import per_container
from shop_common.events import Currency
from shop_common.runtime import Dependencies, build_dependencies, seconds_left
from shop_common.secrets import read_secret

if TYPE_CHECKING:
    from payments.provider import StripeProvider


class PaymentSettings(BaseModel):
    """The provider's settings. ``stripe_api_key`` wins over ``stripe_secret_id`` so that tests and
    the local stack can give a key directly; in AWS only the secret is set. No ``stripe_api_base``
    means Stripe itself."""

    model_config = ConfigDict(frozen=True)

    stripe_api_key: str | None = None
    stripe_secret_id: str | None = None
    stripe_api_base: str | None = None
    currency: Currency = "usd"

    @classmethod
    def from_env(cls) -> PaymentSettings:
        env = os.environ
        return cls(
            stripe_api_key=env.get("STRIPE_API_KEY") or None,
            stripe_secret_id=env.get("STRIPE_SECRET_ID") or None,
            stripe_api_base=env.get("STRIPE_API_BASE") or None,
            currency=env.get("PAYMENT_CURRENCY") or "usd",
        )


@per_container
def dependencies() -> Dependencies[PaymentsRepository]:
    return build_dependencies(PaymentsRepository)


@per_container
def service() -> PaymentsService:
    deps = dependencies()
    settings = PaymentSettings.from_env()
    return PaymentsService(deps.repository, deps.outbox, settings.currency, partial(payment_provider, settings))


@per_container(close=lambda provider: provider.close())
def payment_provider(settings: PaymentSettings) -> StripeProvider:
    """Connected at its first use: events that charge nothing never import stripe."""
    from payments.provider import StripeProvider  # here: the stripe library costs ~250 ms of cold start

    return StripeProvider.connect(stripe_api_key(settings), settings.stripe_api_base, seconds_left)


def stripe_api_key(settings: PaymentSettings) -> str:
    """``STRIPE_API_KEY`` if set, else the service's secret, read as every function reads its
    connection string (shop_common.secrets: a rotated key rebuilds the provider)."""
    if settings.stripe_api_key:
        return settings.stripe_api_key
    if not settings.stripe_secret_id:
        raise RuntimeError("Set STRIPE_API_KEY or STRIPE_SECRET_ID for this function")
    return read_secret(settings.stripe_secret_id)
