"""Notifications data access: the only module of the service that knows pymongo."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from notifications.domain import Contact, Email

# A claim older than this was left by an invocation that died; a retry may take it over.
# Sending is at-least-once only in that case (SES may have sent just before the crash);
# everywhere else an event_id gets exactly one email.
STALE_CLAIM = timedelta(minutes=2)


class NotificationStatus(StrEnum):
    SENDING = "SENDING"
    SENT = "SENT"


class ClaimHeld(Exception):
    """Another invocation is sending this notification right now: retry later."""


class NotificationsRepository:
    def __init__(self, database: Database) -> None:
        self.contacts: Collection = database["contacts"]
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

    def claim(self, event_id: str, event_type: str, user_id: str, email: Email, now: datetime) -> bool:
        """True if this invocation may send the email for ``event_id``; False if it was sent."""
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
            return True
        except DuplicateKeyError:
            pass
        taken_over = self.notifications.update_one(
            {"_id": event_id, "status": NotificationStatus.SENDING.value, "claimed_at": {"$lt": now - STALE_CLAIM}},
            {"$set": fields},
        )
        if taken_over.modified_count:
            return True
        existing = self.notifications.find_one({"_id": event_id}, {"status": 1})
        if existing and existing["status"] == NotificationStatus.SENT.value:
            return False
        raise ClaimHeld(event_id)

    def mark_sent(self, event_id: str, message_id: str, now: datetime) -> None:
        self.notifications.update_one(
            {"_id": event_id},
            {"$set": {"status": NotificationStatus.SENT.value, "message_id": message_id, "sent_at": now}},
        )

    def release(self, event_id: str) -> None:
        """Forget a claim whose send failed, so the retry sends."""
        self.notifications.delete_one({"_id": event_id, "status": NotificationStatus.SENDING.value})
