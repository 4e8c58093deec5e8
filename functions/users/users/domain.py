"""Users domain: pure rules and shapes, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from shop_common.clock import iso
from shop_common.errors import Conflict, Forbidden, NotFound
from shop_common.events import UserRegistered, UserRegisteredData, new_event
from shop_common.identity import Caller

# The pattern publishes what stripping implies: a name of whitespace only is no name (the schema says so too).
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"\S")]


class AlreadyRegistered(Conflict):
    code = "already_registered"

    def __init__(self) -> None:
        super().__init__("You have registered your profile already.")


class EmailNotVerified(Forbidden):
    """The token's email is not one its owner proved: a user may have set it to anyone's."""

    code = "email_not_verified"

    def __init__(self) -> None:
        super().__init__("Your email address is not verified: verify it, sign in again, then register.")


class UserNotFound(NotFound):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"No user has id {user_id!r}.")


class NewUser(BaseModel):
    """Body of ``POST /users``: who registers, and with which email, the caller's token says."""

    model_config = ConfigDict(extra="forbid")

    name: Name


class UserView(BaseModel):
    """A user as the API shows it."""

    user_id: str
    email: str
    name: str
    created_at: str


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    name: str
    created_at: datetime

    def view(self) -> UserView:
        return UserView(user_id=self.user_id, email=self.email, name=self.name, created_at=iso(self.created_at))


def register(caller: Caller, request: NewUser, correlation_id: str, now: datetime) -> tuple[User, UserRegistered]:
    """The caller's own profile (the token's sub and email, stored lower-case) and the event announcing it."""
    user = User(user_id=caller.user_id, email=caller.email.lower(), name=request.name, created_at=now)
    event = new_event(
        UserRegistered,
        UserRegisteredData(user_id=user.user_id, email=user.email, name=user.name),
        correlation_id,
        occurred_at=now,
    )
    return user, event
