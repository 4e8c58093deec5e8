"""Users domain rules (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from users.domain import NewUser, register

NOW = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)


def test_register_lower_cases_the_email_and_announces_the_user() -> None:
    user, event = register(NewUser.model_validate({"email": "Ada@Example.COM", "name": "  Ada  "}), "c1", NOW)
    assert (user.email, user.name, user.created_at) == ("ada@example.com", "Ada", NOW)
    assert event.data.model_dump() == {"user_id": user.user_id, "email": "ada@example.com", "name": "Ada"}
    assert (event.event_type, event.source, event.correlation_id) == ("UserRegistered", "users", "c1")
    assert user.view().created_at == "2026-11-23T05:00:00.000Z"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "nope", "name": "A"},
        {"email": "a@example.com", "name": "   "},
        {"email": "a@example.com", "name": "x" * 101},
        {"email": "a@example.com", "name": "A", "role": "admin"},
        {"email": ["a@example.com"], "name": "A"},
    ],
)
def test_invalid_new_users(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NewUser.model_validate(body)
