"""Users domain rules (no I/O)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shop_common.identity import Caller
from users.domain import NewUser, register

NOW = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
CALLER = Caller(user_id="sub-1", email="Ada@Example.COM", is_staff=False)


def test_register_makes_the_callers_profile_with_the_email_lower_cased_and_announces_it() -> None:
    user, event = register(CALLER, NewUser.model_validate({"name": "  Ada  "}), "c1", NOW)
    assert (user.user_id, user.email, user.name, user.created_at) == ("sub-1", "ada@example.com", "Ada", NOW)
    assert event.data.model_dump() == {"user_id": "sub-1", "email": "ada@example.com", "name": "Ada"}
    assert (event.event_type, event.source, event.correlation_id) == ("UserRegistered", "users", "c1")
    assert user.view().created_at == "2026-11-23T05:00:00.000Z"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "   "},
        {"name": "x" * 101},
        {"name": "A", "role": "admin"},
        {"name": "A", "email": "a@example.com"},  # the token says who registers, not the body
        {"name": "A", "user_id": "someone-else"},
        {"name": ["A"]},
        {},
    ],
)
def test_invalid_new_users(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NewUser.model_validate(body)


def test_the_documented_name_is_exactly_the_accepted_one() -> None:
    """The schema the API publishes says what the model strips away: a name of whitespace only (a form
    feed, say) is refused, so its JSON schema must not call it valid (schemathesis found "\\f")."""
    pattern = NewUser.model_json_schema()["properties"]["name"]["pattern"]
    for space in (chr(code) for code in range(0x3000 + 1) if chr(code).isspace()):
        documented = re.search(pattern, space * 3) is not None
        try:
            NewUser.model_validate({"name": space * 3})
        except ValidationError:
            assert not documented, f"{space!r} documented valid, refused"
    with pytest.raises(ValidationError):
        NewUser.model_validate({"name": "\f"})
    assert re.search(pattern, "\f") is None
    assert re.search(pattern, " Ada ") and NewUser.model_validate({"name": " Ada "}).name == "Ada"
