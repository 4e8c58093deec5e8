"""Users data access: the only module of the service that knows pymongo."""

from __future__ import annotations

from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shop_common.outbox import PENDING_EVENTS, PendingEvent, ensure_outbox_index
from users.domain import EmailTaken, User, UserRegistered


class UsersRepository:
    def __init__(self, database: Database) -> None:
        self.users: Collection = database["users"]

    def ensure_indexes(self) -> None:
        self.users.create_index("email", unique=True, name="email_unique")
        ensure_outbox_index(self.users)

    def outbox_collections(self) -> list[Collection]:
        return [self.users]

    def insert(self, user: User, event: UserRegistered) -> PendingEvent:
        """Store the user and its UserRegistered event in one atomic insert."""
        pending = PendingEvent.of(event)
        try:
            self.users.insert_one(
                {
                    "_id": user.user_id,
                    "email": user.email,
                    "name": user.name,
                    "created_at": user.created_at,
                    PENDING_EVENTS: [pending.to_document()],
                }
            )
        except DuplicateKeyError as error:
            if "email" in str(error.details or error):
                raise EmailTaken(f"A user with email {user.email!r} already exists.") from None
            raise
        return pending

    def get(self, user_id: str) -> User | None:
        document = self.users.find_one({"_id": user_id}, {PENDING_EVENTS: 0})
        return _to_user(document) if document else None


def _to_user(document: dict[str, Any]) -> User:
    return User(
        user_id=document["_id"], email=document["email"], name=document["name"], created_at=document["created_at"]
    )
