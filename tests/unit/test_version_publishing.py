"""Whatever a function runs reaches the alias `live`: a new published version for every change.

Everything that invokes a function calls its alias `live` (tests/unit/test_snapstart_template.py),
which SAM moves to a new `AWS::Lambda::Version` only when that version's logical id changes. By
default SAM hashes the id from the code location, environment, memory and SnapStart only, so a
new layer (a fix in shop_common, a pymongo bump) or a changed timeout updated `$LATEST` and left
`live`, its callers and its snapshot on the old version. Here the template is expanded twice by
SAM's own translator, the second time with one such change, as `sam package` would make it (a
layer's content changed: its content-addressed S3 key changes), and every function must get a new
version id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from devstack.template import load_template
from tests.sam_translation import translated_variant

Template = dict[str, Any]


def version_ids(template: Template) -> dict[str, str]:
    """Each function's AWS::Lambda::Version logical id, in the expanded template."""
    resources = translated_variant(json.dumps(template))["Resources"]
    return {
        resource["Properties"]["FunctionName"]["Ref"]: name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Version"
    }


def functions(template: Template) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def layer_content_changed(layer: str) -> Callable[[Template], None]:
    def change(template: Template) -> None:
        properties = template["Resources"][layer]["Properties"]
        properties["ContentUri"] = f"{properties['ContentUri']}-rebuilt"  # sam package: a new key per content

    return change


def timeout_changed(template: Template) -> None:
    default = template["Globals"]["Function"]["Timeout"]
    for properties in functions(template).values():
        properties["Timeout"] = properties.get("Timeout", default) + 1


@pytest.mark.parametrize(
    "change",
    [layer_content_changed("SharedLayer"), layer_content_changed("DependenciesLayer"), timeout_changed],
    ids=["shared code", "dependencies", "timeout"],
)
def test_every_function_publishes_a_new_version_when_what_it_runs_changes(change: Callable[[Template], None]) -> None:
    before = load_template()
    after = load_template()
    change(after)

    old, new = version_ids(before), version_ids(after)

    assert sorted(old) == sorted(functions(before))
    kept = sorted(function for function in old if old[function] == new[function])
    assert kept == [], f"these functions' alias `live` would keep the old version: {kept}"
