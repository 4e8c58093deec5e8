"""tools.samconfig: the deploy workflow's parameter overrides are samconfig.toml's, with the GitHub
environment's values in place of the placeholders (a command line's --parameter-overrides replaces
samconfig's whole set, so the workflow must not repeat the list)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tools.samconfig import SamconfigError, load, main, parse_overrides

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {
    "dev": {
        "global": {"parameters": {"stack_name": "shop-dev", "region": "eu-west-1"}},
        "deploy": {"parameters": {"parameter_overrides": "Stage=dev LogLevel=DEBUG SenderEmail=REPLACE-WITH-X"}},
    },
    "prod": {
        "global": {"parameters": {"stack_name": "shop-prod", "region": "eu-west-1"}},
        "deploy": {"parameters": {"region": "eu-central-1", "parameter_overrides": "Stage=prod Quoted='a b'"}},
    },
}


def test_replaces_the_given_keys_and_keeps_every_other() -> None:
    overrides = main(
        ["dev", "parameter-overrides", "SenderEmail=shop@example.com", "AlarmEmail=ops@example.com"], CONFIG
    )
    assert parse_overrides(overrides) == {
        "Stage": "dev",
        "LogLevel": "DEBUG",
        "SenderEmail": "shop@example.com",
        "AlarmEmail": "ops@example.com",
    }


def test_an_empty_value_keeps_samconfigs_or_the_templates_default() -> None:
    overrides = main(["prod", "parameter-overrides", "AlarmEmail="], CONFIG)
    assert parse_overrides(overrides) == {"Stage": "prod", "Quoted": "a b"}
    assert shlex.split(overrides) == ["Stage=prod", "Quoted=a b"]  # one argument, quoted where it must be


def test_a_placeholder_left_is_refused_by_its_key_without_any_value() -> None:
    with pytest.raises(SamconfigError, match=r"placeholder in dev: SenderEmail$"):
        main(["dev", "parameter-overrides", "SenderEmail="], CONFIG)


def test_a_malformed_argument_is_refused_without_echoing_it() -> None:
    with pytest.raises(SamconfigError) as refused:
        main(["dev", "parameter-overrides", "shop@example.com"], CONFIG)
    assert "example.com" not in str(refused.value)


def test_stack_name_and_region_as_sam_deploy_reads_them() -> None:
    assert main(["dev", "stack-name"], CONFIG) == "shop-dev"
    assert main(["dev", "region"], CONFIG) == "eu-west-1"
    assert main(["prod", "region"], CONFIG) == "eu-central-1"  # the deploy section's value wins
    with pytest.raises(SamconfigError, match="no environment 'staging'"):
        main(["staging", "region"], CONFIG)


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_the_repositorys_samconfig_gives_every_deployed_environment(environment: str) -> None:
    config = load()
    assert main([environment, "stack-name"], config) == f"shop-{environment}"
    overrides = parse_overrides(main([environment, "parameter-overrides", "SenderEmail=shop@example.com"], config))
    assert overrides["Stage"] == environment
    assert overrides["SenderEmail"] == "shop@example.com"


def test_runs_as_a_module_without_site_packages() -> None:
    ran = subprocess.run(
        [sys.executable, "-S", "-m", "tools.samconfig", "prod", "parameter-overrides", "SenderEmail="],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 1
    assert ran.stderr == "tools.samconfig: still samconfig.toml's placeholder in prod: SenderEmail\n"
