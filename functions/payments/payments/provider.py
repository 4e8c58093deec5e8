"""Stripe PaymentIntents through the official ``stripe`` library: the only module of the service
that knows it. Imported at the first provider call (the library costs about 250 ms of cold
start, which a container that only records OrderPlaced never pays).

Every request that changes something carries an idempotency key derived from the order, so Stripe
answers a repeated request (the library's own retry, or a later attempt) with its first answer
instead of acting twice. When an answer is lost (timeout, connection reset, 5xx, 429), the
provider is asked what happened (the intent retrieved, the refunds listed) instead of being asked
to act again; if it cannot be asked either, ``ProviderUnavailable`` says to try again later.
Any other refusal of a payment (a 4xx) is the payment's own: it is declined. Only a refusal of this
service's credentials (``ProviderMisconfigured``) waits for a person.

A refund is the order's own: it carries the order's metadata and idempotency key, only a refund
with that metadata counts as it, and it refunds what remains of the charge after any refund made
by someone else (staff in the provider's dashboard).
"""

from __future__ import annotations

from dataclasses import dataclass

import stripe

from payments.domain import (
    CancelIntent,
    Charged,
    ConfirmIntent,
    CreateIntent,
    Declined,
    IntentCancelled,
    IntentCreated,
    NeedsAuthentication,
    Outcome,
    ProviderAction,
    ProviderMisconfigured,
    ProviderUnavailable,
    RefundCharge,
    Refunded,
)
from shop_common.mongo import SERVER_SELECTION_TIMEOUT_SECONDS
from shop_common.outbox import SecondsLeft


@dataclass(frozen=True)
class ProviderBudget:
    connect_timeout: float
    read_timeout: float
    max_network_retries: int

    @property
    def worst_case_seconds(self) -> float:
        """How long one call may take, every attempt timing out, with the library's backoff between."""
        attempts = self.max_network_retries + 1
        backoff = sum(
            min(stripe.HTTPClient.INITIAL_DELAY * 2 ** (retry - 1), stripe.HTTPClient.MAX_DELAY)
            for retry in range(1, attempts)
        )
        return attempts * (self.connect_timeout + self.read_timeout) + backoff


# Confirming a card payment takes Stripe seconds at worst; one retry (same idempotency key) absorbs a blip.
STRIPE_BUDGET = ProviderBudget(connect_timeout=2.0, read_timeout=10.0, max_network_retries=1)
# A call starts only if it may time out entirely and still leave time to record what is known.
CALL_RESERVE_SECONDS = STRIPE_BUDGET.worst_case_seconds + SERVER_SELECTION_TIMEOUT_SECONDS + 1
# Errors after which the request may or may not have been carried out.
ANSWER_LOST = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError)
# The provider refused this service's credentials or their rights: no payment can succeed until fixed.
MISCONFIGURED = (stripe.AuthenticationError, stripe.PermissionError)
# A refund in these states has been made (or is on its way) and must not be asked for again.
REFUND_MADE = frozenset({"succeeded", "pending", "requires_action"})
# Marks the refunds this service makes for an order (with the order's id), apart from anyone else's.
REFUND_MADE_BY = "shop-payments"
# The refund_id announced when someone else refunded the whole charge first: no refund of ours exists.
NOTHING_LEFT_TO_REFUND = "none"


def idempotency_key(order_id: str, step: str) -> stripe.RequestOptions:
    return {"idempotency_key": f"order-{order_id}-{step}"}


class StripeProvider:
    def __init__(self, client: stripe.StripeClient, http_client: stripe.HTTPClient, seconds_left: SecondsLeft) -> None:
        self._intents = client.v1.payment_intents
        self._refunds = client.v1.refunds
        self._http_client = http_client
        self._seconds_left = seconds_left

    @classmethod
    def connect(cls, api_key: str, api_base: str | None, seconds_left: SecondsLeft) -> StripeProvider:
        """``api_base`` None: Stripe itself; else another server speaking its API (localstripe)."""
        http_client = stripe.RequestsClient(timeout=(STRIPE_BUDGET.connect_timeout, STRIPE_BUDGET.read_timeout))
        client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=STRIPE_BUDGET.max_network_retries,
            http_client=http_client,
        )
        return cls(client, http_client, seconds_left)

    def close(self) -> None:
        """Close the HTTP connection pool (its sockets would not survive a SnapStart restore)."""
        self._http_client.close()

    def perform(self, action: ProviderAction) -> Outcome:
        try:
            if isinstance(action, CreateIntent):
                return self._create(action)
            if isinstance(action, ConfirmIntent):
                return self._confirm(action)
            if isinstance(action, CancelIntent):
                return self._cancel(action)
            return self._refund(action)
        except MISCONFIGURED as error:
            raise ProviderMisconfigured(f"The payment provider refused this service's key: {error}") from error

    def _create(self, action: CreateIntent) -> IntentCreated | Declined:
        """An intent not confirmed yet: its id is recorded before anything can be charged."""
        self._check_time()
        try:
            intent = self._intents.create(
                params={
                    "amount": action.amount_cents,
                    "currency": action.currency,
                    "payment_method": action.payment_method,
                    # Cards only: no payment method that redirects the customer (which a queue consumer
                    # could not follow). API 2026-09-30 renamed payment_method_types to this.
                    "allowed_payment_method_types": ["card"],
                    "metadata": {"order_id": action.order_id},
                },
                options=idempotency_key(action.order_id, "payment-intent"),
            )
        except stripe.CardError as error:
            return _declined(error)
        except stripe.InvalidRequestError as error:  # any other 4xx: this payment cannot be made
            return _refused(error)
        except ANSWER_LOST as error:
            # Creating again under the same key gives the same intent; an extra one is never confirmed.
            raise ProviderUnavailable(f"Creating the payment intent failed: {error}") from error
        return IntentCreated(intent.id)

    def _confirm(self, action: ConfirmIntent) -> Outcome:
        self._check_time()
        refusal: stripe.InvalidRequestError | None = None
        try:
            intent = self._intents.confirm(action.intent_id, options=idempotency_key(action.order_id, "confirm"))
        except stripe.CardError as error:
            return _declined(error)
        except (stripe.InvalidRequestError, *ANSWER_LOST) as error:
            # Confirmed or cancelled by an earlier attempt, refused, or the answer was lost: ask what happened.
            refusal = error if isinstance(error, stripe.InvalidRequestError) else None
            intent = self._retrieve(action.intent_id)
        if refusal is not None and intent.status == "requires_confirmation":
            return _refused(refusal)  # nothing happened to the intent: the confirmation itself was refused
        return self._judge(intent, action.order_id)

    def _cancel(self, action: CancelIntent) -> Outcome:
        self._check_time()
        try:
            intent = self._intents.cancel(action.intent_id, options=idempotency_key(action.order_id, "cancel"))
        except (stripe.InvalidRequestError, *ANSWER_LOST):
            # Too late (charged or declined meanwhile), or the answer was lost: ask what happened.
            intent = self._retrieve(action.intent_id)
        return self._judge(intent, action.order_id)

    def _refund(self, action: RefundCharge) -> Refunded:
        made, refunded_by_others = self._refunds_of(action)  # ours: by an earlier attempt whose answer was lost
        if made is not None:
            return made
        remaining = action.amount_cents - refunded_by_others
        if remaining <= 0:
            return Refunded(NOTHING_LEFT_TO_REFUND, 0, action.currency)
        self._check_time()
        try:
            refund = self._refunds.create(
                params={
                    "payment_intent": action.intent_id,
                    "amount": remaining,
                    "metadata": {"order_id": action.order_id, "made_by": REFUND_MADE_BY},
                },
                # Never repeated blindly, not even by the library: a lost answer is looked up (below),
                # so a refund is made once even where the idempotency key is not honoured.
                options={**idempotency_key(action.order_id, "refund"), "max_network_retries": 0},
            )
        except (stripe.InvalidRequestError, *ANSWER_LOST) as error:
            # Refunded already, or the answer was lost: ask again.
            made, _ = self._refunds_of(action)
            if made is None:
                raise ProviderUnavailable(f"Refunding {action.intent_id} failed: {error}") from error
            return made
        if refund.status not in REFUND_MADE:
            raise RuntimeError(f"Stripe did not make refund {refund.id} ({refund.status}); it needs a human")
        return _refunded(refund)

    def _retrieve(self, intent_id: str) -> stripe.PaymentIntent:
        self._check_time()
        try:
            return self._intents.retrieve(intent_id)
        except ANSWER_LOST as error:
            raise ProviderUnavailable(f"Looking up {intent_id} failed: {error}") from error

    def _refunds_of(self, action: RefundCharge) -> tuple[Refunded | None, int]:
        """The order's own refund of the intent if made, and what others refunded of it."""
        self._check_time()
        try:
            refunds = self._refunds.list(params={"payment_intent": action.intent_id, "limit": 100})
        except ANSWER_LOST as error:
            raise ProviderUnavailable(f"Listing the refunds of {action.intent_id} failed: {error}") from error
        made = [refund for refund in refunds.data if refund.status in REFUND_MADE]
        ours = [refund for refund in made if _is_order_refund(refund, action.order_id)]
        others = sum(refund.amount for refund in made if not _is_order_refund(refund, action.order_id))
        return (_refunded(ours[0]) if ours else None), others

    def _judge(self, intent: stripe.PaymentIntent, order_id: str) -> Outcome:
        """What an intent's status says happened to the payment."""
        if intent.status == "succeeded":
            return Charged(intent.id)
        if intent.status == "canceled":
            return IntentCancelled()
        if intent.status == "requires_payment_method":  # the confirmation was declined
            error = intent.last_payment_error.to_dict() if intent.last_payment_error else {}
            return Declined(
                error.get("message") or "The payment was declined.", error.get("decline_code") or error.get("code")
            )
        if intent.status == "requires_action":
            # Only the customer could go on (3-D Secure), and this checkout cannot ask them: the intent
            # is cancelled so that it can never be completed later.
            self._check_time()
            try:
                self._intents.cancel(intent.id, options=idempotency_key(order_id, "cancel"))
            except (stripe.InvalidRequestError, *ANSWER_LOST) as error:
                raise ProviderUnavailable(f"Cancelling {intent.id} failed: {error}") from error
            return NeedsAuthentication()
        # processing (the card network has not answered yet), or requires_confirmation (the
        # confirmation never arrived): not known yet.
        raise ProviderUnavailable(f"Payment intent {intent.id} is {intent.status}; asking again later")

    def _check_time(self) -> None:
        left = self._seconds_left()
        if left is not None and left < CALL_RESERVE_SECONDS:
            raise ProviderUnavailable("Too little time left to ask the payment provider; asking again later")


def _declined(error: stripe.CardError) -> Declined:
    # Stripe's decline_code (the issuer's reason) when given, else its error code (card_declined, expired_card...).
    decline_code = (error.error.decline_code if error.error else None) or error.code
    return Declined(error.user_message or "The card was declined.", decline_code)


def _refused(error: stripe.InvalidRequestError) -> Declined:
    """The provider refused the payment itself (its method, its amount): the customer hears why."""
    return Declined(f"The payment provider refused the payment: {error.user_message or error.code or error}", None)


def _is_order_refund(refund: stripe.Refund, order_id: str) -> bool:
    metadata = refund.metadata.to_dict() if refund.metadata else {}
    return metadata.get("order_id") == order_id and metadata.get("made_by") == REFUND_MADE_BY


def _refunded(refund: stripe.Refund) -> Refunded:
    return Refunded(refund.id, refund.amount, refund.currency)
