"""Users use cases, decided with the caller: register one's own profile, read a profile."""

from __future__ import annotations

from shop_common.clock import utc_now
from shop_common.identity import Caller
from shop_common.outbox import Outbox
from users import domain
from users.domain import EmailNotVerified, NewUser, User, UserNotFound
from users.repository import UsersRepository


class UsersService:
    def __init__(self, repository: UsersRepository, outbox: Outbox) -> None:
        self.repository = repository
        self.outbox = outbox

    def register(self, caller: Caller, request: NewUser, correlation_id: str) -> User:
        """Store the caller's profile with its UserRegistered, then publish it; a second
        registration of the same caller is AlreadyRegistered. Only a verified email becomes a
        profile's: the shop writes to it, with the name the caller chose."""
        if not caller.email_verified:
            raise EmailNotVerified()
        user, event = domain.register(caller, request, correlation_id, utc_now())
        pending = self.repository.insert(user, event)
        self.outbox.flush(self.repository.users, user.user_id, [pending])
        return user

    def get(self, caller: Caller, user_id: str) -> User:
        """The profile, for that user or staff; anyone else is told it does not exist (and
        nothing is read, so not even the time taken tells)."""
        user = self.repository.get(user_id) if caller.may_see(user_id) else None
        if user is None:
            raise UserNotFound(user_id)
        return user
