"""`sam local invoke -n env.json` gives every function what env.json sets for it.

SAM CLI applies an env.json value only to a variable the template declares for the function
(SAM CLI 1.170, `EnvironmentVariables.resolve`); anything else is dropped without a word, and
a function without MONGODB_URI reads its Secrets Manager secret instead of the local MongoDB.
The environment is resolved here by SAM CLI's own code (the template's Globals and intrinsics,
then env.json), the same path `sam local invoke` takes before it starts a container. SAM CLI
lives in the tools virtualenv (its pins clash with the project's), so it runs in a subprocess;
`make test` builds `.venv-tools` first (a plain `pytest` without it skips, tests/artifacts.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from devstack.artifact import HOST_BUILD_DIR, BuiltTemplate
from devstack.lambda_runtime import LambdaFunction, environment
from payments.dependencies import PaymentSettings
from shop_common.settings import ServiceSettings
from tests.artifacts import require

ROOT = Path(__file__).resolve().parents[2]
TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"
ENV_JSON: dict[str, dict[str, str]] = json.loads((ROOT / "env.json").read_text())
# SAM sets these itself (from the shell's or profile's credentials, else placeholders) and Lambda
# reserves the names, so the template cannot declare them: env.json's values for them never apply.
SAM_SUPPLIED = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

# Runs in .venv-tools: the same calls `sam local invoke` makes (SamLocalStackProvider reads the
# template and applies Globals and parameters, LocalLambdaRunner._make_env_vars merges env.json).
RESOLVE = """
import json, sys
from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

template, env_json, cwd = sys.argv[1:4]
stacks, _ = SamLocalStackProvider.get_stacks(template)
provider = SamFunctionProvider(stacks, ignore_code_extraction_warnings=True)
with open(env_json) as f:
    overrides = json.load(f)
runner = LocalLambdaRunner(
    local_runtime=None, function_provider=provider, cwd=cwd, real_path=cwd,
    aws_region="eu-west-1", env_vars_values=overrides,
)
print(json.dumps({fn.name: runner._make_env_vars(fn).resolve() for fn in provider.get_all()}))
"""


@pytest.fixture(scope="module")
def sam_environments() -> dict[str, dict[str, str]]:
    require(TOOLS_PYTHON, "AWS SAM CLI's virtualenv; `make build` creates it")
    with tempfile.TemporaryDirectory() as home:
        # Nothing from the caller's shell or AWS profile: a shell MONGODB_URI would hide the defect.
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": home,
            "SAM_CLI_TELEMETRY": "0",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        completed = subprocess.run(
            [str(TOOLS_PYTHON), "-c", RESOLVE, str(ROOT / "template.yaml"), str(ROOT / "env.json"), str(ROOT)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
    assert completed.returncode == 0, completed.stderr
    environments: dict[str, dict[str, str]] = json.loads(completed.stdout)
    return environments


def test_env_json_names_every_function_of_the_template(sam_environments: dict[str, Any]) -> None:
    assert sorted(sam_environments) == sorted(ENV_JSON)


@pytest.mark.parametrize("function", sorted(ENV_JSON))
def test_every_value_env_json_sets_reaches_the_function(
    function: str, sam_environments: dict[str, dict[str, str]]
) -> None:
    resolved = sam_environments[function]
    wanted = {name: value for name, value in ENV_JSON[function].items() if name not in SAM_SUPPLIED}
    assert {name: resolved.get(name) for name in wanted} == wanted


@pytest.mark.parametrize("function", sorted(ENV_JSON))
def test_the_function_uses_the_local_mongodb_and_moto_not_its_secret(
    function: str, sam_environments: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = sam_environments[function]
    assert urlsplit(resolved.get("MONGODB_URI", "")).hostname == "127.0.0.1"
    assert urlsplit(resolved.get("AWS_ENDPOINT_URL", "")).hostname == "127.0.0.1"
    # The function's own settings, read from exactly this environment: the URI wins over the secret.
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in resolved.items():
        monkeypatch.setenv(name, value)
    settings = ServiceSettings.from_env()
    assert settings.mongodb_secret_id  # declared by the template, and bypassed:
    assert settings.mongodb_uri == ENV_JSON[function]["MONGODB_URI"]
    assert settings.aws_endpoint_url == ENV_JSON[function]["AWS_ENDPOINT_URL"]


def test_the_payments_consumer_uses_localstripe_not_its_secret(
    sam_environments: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = sam_environments["PaymentsEventsFunction"]
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in resolved.items():
        monkeypatch.setenv(name, value)
    settings = PaymentSettings.from_env()
    assert settings.stripe_secret_id  # declared by the template, and bypassed:
    assert settings.stripe_api_key == ENV_JSON["PaymentsEventsFunction"]["STRIPE_API_KEY"]
    assert urlsplit(settings.stripe_api_base or "").hostname == "127.0.0.1"


def test_devstack_invoke_resolves_each_environment_as_sam_does(sam_environments: dict[str, dict[str, str]]) -> None:
    """`python -m devstack invoke -n env.json` (devstack/lambda_runtime.py) gives each function of the
    built template the environment SAM CLI gives it: the declared variables, region and memory."""
    require(HOST_BUILD_DIR / "template.yaml", "the host build; `make build-host` builds it")
    built = BuiltTemplate(HOST_BUILD_DIR)
    for name in sorted(ENV_JSON):
        function = LambdaFunction.from_build(built, name)
        ours = environment(function, ENV_JSON, shell={}, region="eu-west-1")
        compared = [*function.variables, "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        assert {variable: ours[variable] for variable in compared} == {
            variable: sam_environments[name][variable] for variable in compared
        }, name
