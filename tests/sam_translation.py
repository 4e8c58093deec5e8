"""template.yaml as CloudFormation sees it: expanded by SAM's own translator.

The translator runs in the tools virtualenv (.venv-tools), whose pins clash with the project's.
Local code paths become S3 URIs, as `sam package` would make them (``s3://artifacts/<path>``:
the key is the path in this repository).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"
TEMPLATE_PATH = ROOT / "template.yaml"

TRANSLATE = """
import json, sys
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

class NoManagedPolicies:
    def load(self):
        return {}

with open(sys.argv[1]) as f:
    template = yaml_parse(f.read())
for resource in template["Resources"].values():
    properties = resource.get("Properties", {})
    for key in ("CodeUri", "ContentUri"):
        if key in properties:
            properties[key] = "s3://artifacts/" + str(properties[key])
pseudo = {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
print(json.dumps(transform(template, {**pseudo, "AWS::StackName": "shop"}, NoManagedPolicies())))
"""


def translated_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The whole expanded template; skips (fails under SHOP_REQUIRE_ARTIFACTS) without .venv-tools."""
    if not TOOLS_PYTHON.exists():
        if os.environ.get("SHOP_REQUIRE_ARTIFACTS"):
            pytest.fail(".venv-tools is missing although `make test` builds it")
        pytest.skip(".venv-tools (AWS SAM CLI) is absent: `make test`, `make build` or `make lint` creates it")
    return translated_variant(path.read_text())


def translated_variant(template_text: str) -> dict[str, Any]:
    """A template given as text (YAML or JSON: a variant of template.yaml), expanded."""
    if not TOOLS_PYTHON.exists():
        pytest.skip(".venv-tools (AWS SAM CLI) is absent: `make test`, `make build` or `make lint` creates it")
    expanded: dict[str, Any] = json.loads(_translate(template_text))
    return expanded


@cache
def _translate(text: str) -> str:
    """Translated once per template text and process (about a second each)."""
    with tempfile.TemporaryDirectory() as home:
        source = Path(home) / "template.yaml"
        source.write_text(text)
        completed = subprocess.run(
            [str(TOOLS_PYTHON), "-c", TRANSLATE, str(source)],
            capture_output=True,
            text=True,
            env={"PATH": os.environ.get("PATH", ""), "HOME": home, "AWS_DEFAULT_REGION": "eu-west-1"},
            cwd=ROOT,
            timeout=120,
            check=False,
        )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def translated_resources(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    resources: dict[str, Any] = translated_template(path)["Resources"]
    return resources
