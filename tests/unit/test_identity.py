"""The caller, read from the claims API Gateway's Cognito authorizer passes on (shop_common.identity):
every value a string, ``cognito:groups`` included; anything short of a usable identity is 401."""

from __future__ import annotations

from typing import Any

import pytest

from shop_common.errors import Unauthorized
from shop_common.identity import Caller, caller_of, groups_of
from tests.support import ADA, GRACE, sample_event

SUB = "3f2b6c1e-8a4d-4e57-9d0a-1b2c3d4e5f60"


def event_with(claims: Any) -> dict[str, Any]:
    return {"requestContext": {"authorizer": {"claims": claims}}}


@pytest.mark.parametrize(
    ("sample", "caller"),
    [
        ("api-users-create", ADA),
        ("api-users-get", ADA),
        ("api-orders-create", ADA),
        ("api-orders-get", ADA),
        ("api-orders-list", ADA),
        ("api-orders-cancel", ADA),
        ("api-inventory-put", GRACE),
    ],
)
def test_the_sample_events_carry_their_callers_claims(sample: str, caller: Caller) -> None:
    assert caller_of(sample_event(sample)) == caller


def test_the_public_sample_carries_no_identity() -> None:
    with pytest.raises(Unauthorized):
        caller_of(sample_event("api-inventory-get"))


@pytest.mark.parametrize(
    ("claim", "groups"),
    [
        (None, set()),
        ("staff", {"staff"}),  # one group: its name
        ("[staff, admins]", {"staff", "admins"}),
        ("[admins staff]", {"staff", "admins"}),
        ("staff,admins", {"staff", "admins"}),
        (" [ staff ,admins ] ", {"staff", "admins"}),
        ('["staff","admins"]', {"staff", "admins"}),
        ("[]", set()),
        ("", set()),
        (["staff", "admins"], {"staff", "admins"}),  # the token's own array
    ],
)
def test_cognito_groups_in_every_form_api_gateway_passes_them(claim: Any, groups: set[str]) -> None:
    assert groups_of(claim) == groups


@pytest.mark.parametrize(
    ("claim", "is_staff"),
    [
        ("staff", True),
        ("[customers, staff]", True),
        ("admins,staff", True),
        ("staffers", False),
        ("[not-staff]", False),
        ("Staff", False),  # group names are case-sensitive
        ("", False),
        (None, False),
    ],
)
def test_staff_are_the_members_of_the_staff_group(claim: str | None, is_staff: bool) -> None:
    claims = {"sub": SUB, "email": "a@example.com"}
    if claim is not None:
        claims["cognito:groups"] = claim
    assert caller_of(event_with(claims)) == Caller(user_id=SUB, email="a@example.com", is_staff=is_staff)


@pytest.mark.parametrize(
    ("claim", "verified"),
    [
        ("true", True),  # as API Gateway passes the token's boolean on
        (True, True),  # the token's own form
        ("false", False),  # the email was changed and not verified since
        (False, False),
        (None, False),  # absent: nothing proves the address
        ("True", False),
        ("1", False),
        ("yes", False),
        ("", False),
        (["true"], False),
    ],
)
def test_only_a_true_email_verified_claim_makes_the_email_verified(claim: Any, verified: bool) -> None:
    claims = {"sub": SUB, "email": "a@example.com"}
    if claim is not None:
        claims["email_verified"] = claim
    assert caller_of(event_with(claims)).email_verified is verified


def test_a_customer_may_see_their_own_and_staff_anyones() -> None:
    customer = Caller(user_id="u1", email="u1@example.com", is_staff=False)
    staff = Caller(user_id="s1", email="s1@example.com", is_staff=True)
    assert customer.may_see("u1")
    assert not customer.may_see("u2")
    assert staff.may_see("u2")
    assert staff.may_see("s1")


GOOD = {"sub": SUB, "email": "a@example.com"}


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"requestContext": None},
        {"requestContext": {}},
        {"requestContext": {"authorizer": None}},
        {"requestContext": {"authorizer": {}}},
        {"requestContext": {"authorizer": "claims"}},
        {"requestContext": "context"},
        event_with(None),
        event_with("sub=me"),
        event_with(["sub", SUB]),
        event_with({}),
        event_with({"email": "a@example.com"}),
        event_with({**GOOD, "sub": ""}),
        event_with({**GOOD, "sub": 42}),
        event_with({**GOOD, "sub": ["a"]}),
        event_with({**GOOD, "sub": {"$gt": ""}}),
        event_with({**GOOD, "sub": "../users"}),
        event_with({**GOOD, "sub": "x" * 65}),
        event_with({"sub": SUB}),
        event_with({**GOOD, "email": ""}),
        event_with({**GOOD, "email": "no-at-sign"}),
        event_with({**GOOD, "email": 7}),
        event_with({**GOOD, "email": "a@" + "x" * 253}),
        event_with({**GOOD, "cognito:groups": 1}),
        event_with({**GOOD, "cognito:groups": {"staff": True}}),
        event_with({**GOOD, "cognito:groups": ["staff", 1]}),
    ],
)
def test_no_or_malformed_claims_are_unauthorized(event: dict[str, Any]) -> None:
    with pytest.raises(Unauthorized) as refused:
        caller_of(event)
    assert refused.value.code == "unauthorized"
