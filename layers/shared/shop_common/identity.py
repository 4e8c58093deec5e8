"""Who is calling: the caller API Gateway's Cognito authorizer has verified.

API Gateway checks the ID token (signature, expiry, issuer, audience) before the function
runs and passes its claims on in ``requestContext.authorizer.claims``, every value a string.
This module only reads them; a request without usable claims (the route has no authorizer,
or the claims are not what a token of the pool carries) is refused as unauthenticated.

Pure: no I/O and no framework imports, so domain modules may take a Caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shop_common.errors import Unauthorized

STAFF_GROUP = "staff"
# A user's id is the token's sub (a UUID in Cognito); ids of this shape are safe in paths and queries.
USER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_EMAIL_LENGTH = 254
_USER_ID = re.compile(USER_ID_PATTERN)
# Separators of the group names in the string API Gateway makes of the token's array.
_GROUP_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class Caller:
    user_id: str  # the token's sub
    email: str  # the token's email, as the token has it
    is_staff: bool
    # Whether the token says its owner proved the email theirs; unproven unless it says so.
    email_verified: bool = False

    def may_see(self, owner_id: str) -> bool:
        """Whether the caller may read or act on what belongs to user ``owner_id``: their own, or
        anyone's for staff."""
        return self.is_staff or self.user_id == owner_id


def caller_of(event: Mapping[str, Any]) -> Caller:
    """The caller of an API Gateway proxy event, from its authorizer's claims."""
    claims = _claims_of(event)
    user_id, email = claims.get("sub"), claims.get("email")
    if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
        raise _unauthenticated()
    if not isinstance(email, str) or "@" not in email or len(email) > MAX_EMAIL_LENGTH:
        raise _unauthenticated()
    return Caller(
        user_id=user_id,
        email=email,
        is_staff=STAFF_GROUP in groups_of(claims.get("cognito:groups")),
        email_verified=_is_true(claims.get("email_verified")),
    )


def _is_true(claim: Any) -> bool:
    """Whether a boolean claim is true: the token holds a JSON boolean, API Gateway passes it on as
    the string ``"true"``. Anything else, absent included, is false."""
    return claim is True or claim == "true"


def groups_of(claim: Any) -> frozenset[str]:
    """The group names of a ``cognito:groups`` claim. The token holds an array; API Gateway's REST
    Cognito authorizer passes it on as a string: ``staff`` for one group, and for several
    ``[staff, admins]``, ``[staff admins]`` or ``staff,admins`` depending on the path. Cognito group
    names hold no whitespace, so brackets, quotes, commas and whitespace only ever separate. A
    list (the token's own form) is taken as it is; anything else is not a claim of the pool."""
    if claim is None:
        return frozenset()
    if isinstance(claim, list) and all(isinstance(name, str) for name in claim):
        return frozenset(claim)
    if not isinstance(claim, str):
        raise _unauthenticated()
    inside = claim.strip().removeprefix("[").removesuffix("]")
    return frozenset(name.strip("\"'") for name in _GROUP_SEPARATORS.split(inside) if name.strip("\"'"))


def _claims_of(event: Mapping[str, Any]) -> Mapping[str, Any]:
    node: Any = event
    for key in ("requestContext", "authorizer", "claims"):
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        raise _unauthenticated()
    return node


def _unauthenticated() -> Unauthorized:
    return Unauthorized("Sign in and send your ID token as Authorization: Bearer <token>.")
