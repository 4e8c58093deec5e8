"""Notifications data access: the only module of the service that knows pymongo."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from notifications.domain import Contact, Email

# A claim still SENDING after this was left by an invocation that died (the function times
# out after 10 s): SES may or may not have sent its email, so it becomes UNKNOWN, never resent.
STALE_CLAIM = timedelta(minutes=2)


class NotificationStatus(StrEnum):
    SENDING = "SENDING"
    SENT = "SENT"
    UNKNOWN = "UNKNOWN"  # maybe sent: never sent again; for a human to check (logged, metric)
    FAILED = "FAILED"  # refused by SES for a reason no retry cures (why_failed): never sent again


class Claim(StrEnum):
    GRANTED = "GRANTED"  # this invocation sends the email
    SENT = "SENT"  # sent before: a duplicate delivery
    UNKNOWN = "UNKNOWN"  # an earlier attempt may have sent it, already known
    ABANDONED = "ABANDONED"  # an earlier attempt died mid-send, recorded UNKNOWN just now
    FAILED = "FAILED"  # SES refused it for good before


class ClaimHeld(Exception):
    """Another invocation is sending this notification right now: retry later."""


class NotificationsRepository:
    def __init__(self, database: Database) -> None:
        self.contacts: Collection = database["contacts"]
        self.order_owners: Collection = database["order_owners"]
        self.notifications: Collection = database["notifications"]

    def ensure_indexes(self) -> None:
        self.notifications.create_index([("user_id", 1), ("created_at", -1)], name="notifications_by_user")

    def save_contact(self, contact: Contact) -> None:
        self.contacts.update_one(
            {"_id": contact.user_id}, {"$set": {"email": contact.email, "name": contact.name}}, upsert=True
        )

    def contact(self, user_id: str) -> Contact | None:
        document = self.contacts.find_one({"_id": user_id})
        return Contact(user_id, document["email"], document["name"]) if document else None

    def remember_owner(self, order_id: str, user_id: str) -> None:
        """The projection of orders to their users; an order's user never changes."""
        self.order_owners.update_one({"_id": order_id}, {"$setOnInsert": {"user_id": user_id}}, upsert=True)

    def owner_of(self, order_id: str) -> str | None:
        document = self.order_owners.find_one({"_id": order_id})
        return str(document["user_id"]) if document else None

    def claim(self, event_id: str, event_type: str, user_id: str, email: Email, now: datetime) -> Claim:
        """Whether this invocation may send the email for ``event_id``: only if no attempt
        was made, or the last one definitely failed (released)."""
        fields = {
            "event_type": event_type,
            "user_id": user_id,
            "to": email.to,
            "subject": email.subject,
            "body": email.body,
            "status": NotificationStatus.SENDING.value,
            "claimed_at": now,
        }
        try:
            self.notifications.insert_one({"_id": event_id, "created_at": now, **fields})
            return Claim.GRANTED
        except DuplicateKeyError:
            pass
        abandoned = self.notifications.update_one(
            {"_id": event_id, "status": NotificationStatus.SENDING.value, "claimed_at": {"$lt": now - STALE_CLAIM}},
            {"$set": {"status": NotificationStatus.UNKNOWN.value, "unknown_since": now, "why_unknown": "abandoned"}},
        )
        if abandoned.modified_count:
            return Claim.ABANDONED
        existing = self.notifications.find_one({"_id": event_id}, {"status": 1})
        if existing and existing["status"] == NotificationStatus.SENT.value:
            return Claim.SENT
        if existing and existing["status"] == NotificationStatus.UNKNOWN.value:
            return Claim.UNKNOWN
        if existing and existing["status"] == NotificationStatus.FAILED.value:
            return Claim.FAILED
        raise ClaimHeld(event_id)  # SENDING right now, or released in between: retry later

    def mark_sent(self, event_id: str, message_id: str, now: datetime) -> None:
        self.notifications.update_one(
            {"_id": event_id},
            {"$set": {"status": NotificationStatus.SENT.value, "message_id": message_id, "sent_at": now}},
        )

    def mark_unknown(self, event_id: str, why: str, now: datetime) -> None:
        """Keep the claim for good: SES may have sent the email, so no retry may send it."""
        self.notifications.update_one(
            {"_id": event_id, "status": NotificationStatus.SENDING.value},
            {"$set": {"status": NotificationStatus.UNKNOWN.value, "unknown_since": now, "why_unknown": why}},
        )

    def mark_failed(self, event_id: str, why: str, now: datetime) -> None:
        """Keep the claim for good: SES refused the email for a reason no retry cures."""
        self.notifications.update_one(
            {"_id": event_id, "status": NotificationStatus.SENDING.value},
            {"$set": {"status": NotificationStatus.FAILED.value, "failed_at": now, "why_failed": why}},
        )

    def release(self, event_id: str) -> None:
        """Forget a claim whose send definitely failed, so the retry sends."""
        self.notifications.delete_one({"_id": event_id, "status": NotificationStatus.SENDING.value})
