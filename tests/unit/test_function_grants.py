"""Every function's role grants exactly what the function uses, no more and no less.

What it uses: the AWS operations its code can call, found statically from its handler
(tests.code_reach: the modules it imports, followed definition by definition from the handler, so
that a function that imports the outbox but never publishes is not taken to publish), each on the
resource its code takes from its environment; and what Lambda does for its configuration (its
logs, traces, the queue of its event source mapping, its dead-letter queue). What it is granted:
its role in the template as SAM expands it (policy templates, inline and hand-written roles).

Statically rather than by running the functions, because a run sees only the paths its events
take, and a role must allow the others (a publish after a failure, work resumed after an outage);
and derived from the code rather than declared, so that a call added to the code, or a grant added
to the template, fails here until the other side follows. Functions added to the template are
checked as they come. tests/integration/test_function_calls.py runs every function and checks
that each call it actually makes was found here and is granted.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest

from devstack.template import load_template
from tests.least_privilege import (
    ROOT,
    Access,
    Grant,
    code_reach,
    compare,
    granted,
    lambda_functions,
    needed_accesses,
    symbolic_resolver,
)
from tests.sam_translation import translated_template

FUNCTIONS = sorted(
    name for name, resource in load_template()["Resources"].items() if resource["Type"] == "AWS::Serverless::Function"
)
TOPIC = "arn:aws:sns:eu-west-1:123456789012:shop-dev-events"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return translated_template()


def verdict(template: dict[str, Any], function: str) -> tuple[list[Access], list[Grant]]:
    resolver = symbolic_resolver(template)
    lambda_function = lambda_functions(template["Resources"])[function]
    return compare(
        needed_accesses(lambda_function, resolver), granted(lambda_function, template["Resources"], resolver)
    )


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_role_grants_exactly_what_the_function_uses(template: dict[str, Any], function: str) -> None:
    missing, unused = verdict(template, function)
    assert (missing, unused) == ([], []), (
        f"{function}\n  used but not granted:\n    "
        + "\n    ".join(map(str, missing))
        + "\n  granted but not used:\n    "
        + "\n    ".join(map(str, unused))
    )


def test_the_inventory_api_neither_publishes_nor_may_publish(template: dict[str, Any]) -> None:
    """Issue 15, defect 4: it shared the relay's policies, so it could publish any event."""
    resolver = symbolic_resolver(template)
    function = lambda_functions(template["Resources"])["InventoryApiFunction"]
    assert not [access for access in needed_accesses(function, resolver) if access.action.startswith("sns:")]
    assert not [
        grant for grant in granted(function, template["Resources"], resolver) if grant.action.startswith("sns:")
    ]


def test_what_the_functions_code_calls_is_found(template: dict[str, Any]) -> None:
    """The analysis sees the calls made through shared code, lazily built clients and libraries."""
    functions = lambda_functions(template["Resources"])

    def operations(function: str) -> set[str]:
        return {f"{call.service}:{call.operation}" for call in code_reach(functions[function]).calls}

    assert "sns:PublishBatch" in operations("UsersApiFunction")  # the outbox's flush, after the insert
    assert "sns:PublishBatch" in operations("OrdersOutboxRelayFunction")  # passed to a thread pool
    assert "ses:SendEmail" in operations("NotificationsFunction")
    assert "secretsmanager:GetSecretValue" in operations("InventoryApiFunction")  # inside Powertools
    assert operations("InventoryApiFunction") == {"secretsmanager:GetSecretValue"}


def test_a_grant_no_code_uses_is_reported(template: dict[str, Any]) -> None:
    """As InventoryApiFunction's was: give its role the right to publish again."""
    resources = dict(template["Resources"])
    role_name = resources["InventoryApiFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    role = dict(resources[role_name])
    publish = {"Effect": "Allow", "Action": "sns:Publish", "Resource": {"Ref": "ShopEventsTopic"}}
    role["Properties"] = {
        **role["Properties"],
        "Policies": [
            *role["Properties"]["Policies"],
            {"PolicyName": "publish", "PolicyDocument": {"Statement": [publish]}},
        ],
    }
    resources[role_name] = role

    missing, unused = verdict({**template, "Resources": resources}, "InventoryApiFunction")

    assert missing == []
    assert [(grant.action, grant.resource) for grant in unused] == [("sns:Publish", TOPIC)]


def test_a_call_no_grant_allows_is_reported(template: dict[str, Any], tmp_path: Path) -> None:
    """The inventory API's code with one more entry point, which publishes: its role does not allow it."""
    code = tmp_path / "inventory"
    shutil.copytree(ROOT / "functions" / "inventory", code)
    with (code / "inventory" / "api.py").open("a") as api:
        api.write(
            "\n\ndef announce(sku: str) -> None:\n"
            "    deps = dependencies()\n"
            "    deps.outbox.flush(deps.repository.products, sku, [])\n"
        )
    resolver = symbolic_resolver(template)
    function = lambda_functions(template["Resources"])["InventoryApiFunction"]
    changed = dataclasses.replace(function, code_roots=(code, *function.code_roots[1:]))

    missing, unused = compare(needed_accesses(changed, resolver), granted(changed, template["Resources"], resolver))

    assert [(access.action, access.resource) for access in missing] == [("sns:Publish", TOPIC)]
    assert unused == []
