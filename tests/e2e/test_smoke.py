"""`make smoke` against the local stack, through the same outputs (stack.json) and steps as against AWS,
so the command the deploy workflow runs after each deploy cannot rot."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from devstack.mongod import free_port
from devstack.provision import aws_client
from tests.e2e.running_stack import ROOT, RunningStack
from tools.smoke import SMOKE_SKU

FULL_RUN = [
    "stack",
    "users",
    "register",
    "stock",
    "order",
    "confirmed",
    "cancel",
    "refunded",
    "401 without a token",
    "403 customer on a staff route",
    "404 someone else's order",
    "404 unknown order",
    "unstock",
    "delete users",
]


def smoke(state_dir: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tools.smoke", "--local", "--state-dir", str(state_dir), *options]
    return subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)


def steps(output: str) -> list[tuple[str, str]]:
    """(outcome, step) of each line."""
    return [(line.split()[0], line.split(None, 1)[1].split(":")[0]) for line in output.splitlines()]


def smoke_users_left(stack: RunningStack) -> list[str]:
    cognito = aws_client("cognito-idp", stack.description["aws_endpoint_url"])
    users = cognito.list_users(UserPoolId=stack.description["user_pool_id"])["Users"]
    emails = [a["Value"] for user in users for a in user["Attributes"] if a["Name"] == "email"]
    return [email for email in emails if "smoke" in email]


def test_the_smoke_test_orders_cancels_is_refused_and_cleans_up(stack: RunningStack) -> None:
    result = smoke(stack.state_dir)

    assert result.returncode == 0, result.stdout + result.stderr
    assert steps(result.stdout) == [("ok", step) for step in FULL_RUN]
    assert "@" not in result.stdout + result.stderr  # no address, and no token (a JWT has no @, but is long:)
    assert max(len(line) for line in result.stdout.splitlines()) < 160
    product = stack.call("GET", f"/inventory/{SMOKE_SKU}")[1]
    assert product["available"] == 0  # the contract has no DELETE: the one product is left unstocked
    assert smoke_users_left(stack) == []


def test_read_only_mode_places_no_order(stack: RunningStack) -> None:
    result = smoke(stack.state_dir, "--no-order")

    assert result.returncode == 0, result.stdout + result.stderr
    assert steps(result.stdout) == [
        ("ok", "stack"),
        ("skip", "order"),
        ("ok", "users"),
        ("ok", "catalog"),
        ("ok", "401 without a token"),
        ("ok", "403 customer on a staff route"),
        ("ok", "404 unknown order"),
        ("ok", "delete users"),
    ]
    assert smoke_users_left(stack) == []


def test_a_step_that_fails_is_one_line_no_traceback_exit_1_and_the_users_are_still_deleted(
    stack: RunningStack, tmp_path: Path
) -> None:
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "stack.json").write_text(json.dumps({**stack.description, "api_url": nothing_listens}))

    result = smoke(tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert steps(result.stdout) == [("ok", "stack"), ("ok", "users"), ("FAIL", "register"), ("ok", "delete users")]
    assert smoke_users_left(stack) == []


def test_a_saga_step_that_fails_fails_the_run_and_the_product_is_still_unstocked(stack: RunningStack) -> None:
    result = smoke(stack.state_dir, "--payment-method", "pm_card_chargeCustomerFail")  # declined when charged

    assert result.returncode == 1
    assert steps(result.stdout)[4:] == [
        ("ok", "order"),
        ("FAIL", "confirmed"),
        ("ok", "unstock"),
        ("ok", "delete users"),
    ]
    assert "REJECTED" in result.stdout
    assert stack.call("GET", f"/inventory/{SMOKE_SKU}")[1]["available"] == 0
    assert smoke_users_left(stack) == []


def test_a_run_stopped_by_sigterm_still_deletes_its_users(stack: RunningStack, tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        description = {**stack.description, "api_url": f"http://127.0.0.1:{silent.getsockname()[1]}"}
        (tmp_path / "stack.json").write_text(json.dumps(description))
        command = [sys.executable, "-m", "tools.smoke", "--local", "--state-dir", str(tmp_path)]
        run = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert run.stdout is not None
        assert run.stdout.readline().startswith("ok   stack")
        assert run.stdout.readline().startswith("ok   users")  # then it waits for POST /users to answer
        run.send_signal(signal.SIGTERM)
        stdout, stderr = run.communicate(timeout=60)

    assert run.returncode == 128 + signal.SIGTERM
    assert steps(stdout) == [("ok", "delete users")]
    assert "Traceback" not in stderr
    assert smoke_users_left(stack) == []
