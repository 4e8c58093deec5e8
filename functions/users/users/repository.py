"""Users data access: the only module of the service that knows pymongo."""

from __future__ import annotations

from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shop_common.outbox import PENDING_EVENTS, PendingEvent, ensure_outbox_index
from users.domain import AlreadyRegistered, User, UserRegistered

# Profiles were unique by email while clients chose it; the identity is now the token's sub, and
# Cognito keeps emails unique within the pool. Kept, the index would lock out anyone who signs up
# again (a new sub) with the email of a profile left behind by a deleted Cognito user.
FORMER_EMAIL_INDEX = "email_unique"


class UsersRepository:
    def __init__(self, database: Database) -> None:
        self.users: Collection = database["users"]

    def ensure_indexes(self) -> None:
        if FORMER_EMAIL_INDEX in self.users.index_information():
            self.users.drop_index(FORMER_EMAIL_INDEX)
        ensure_outbox_index(self.users)

    def outbox_collections(self) -> list[Collection]:
        return [self.users]

    def insert(self, user: User, event: UserRegistered) -> PendingEvent:
        """Store the user and its UserRegistered event in one atomic insert; the user's id is
        the caller's, so a second insert of it is AlreadyRegistered."""
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
            if (error.details or {}).get("keyPattern") == {"_id": 1}:
                raise AlreadyRegistered from None
            raise
        return pending

    def get(self, user_id: str) -> User | None:
        document = self.users.find_one({"_id": user_id}, {PENDING_EVENTS: 0})
        return _to_user(document) if document else None


def _to_user(document: dict[str, Any]) -> User:
    return User(
        user_id=document["_id"], email=document["email"], name=document["name"], created_at=document["created_at"]
    )
