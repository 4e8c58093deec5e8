"""`make smoke`: one pass through the shop as its clients use it, against a deployed stack (its
CloudFormation outputs ApiUrl, UserPoolId, UserPoolClientId) or the local stack of `make dev` (its
stack.json). It makes throwaway Cognito users (a customer, a second customer, a staff member), registers
the customer, stocks one product, places a paid order until CONFIRMED, cancels it until refunded, checks
the identity refusals (401, 403, 404), then unstocks the product and deletes the users, whatever failed.

One line per step, exit 0 only if every step passed. Nothing it prints names a user: the throwaway
addresses are the SES mailbox simulator's (the shop's emails to them count against no quota or
reputation) and never printed, nor are tokens.

Left behind, because the contract deletes neither: the product `smoke-test-product` (one, re-stocked
each run, at 0 after it) and each run's customer profile and order (cancelled, refunded).

    python -m tools.smoke --stack shop-dev --region eu-west-1
    python -m tools.smoke --local [--state-dir .local]

Ordering charges the payment method (default `pm_card_visa`, Stripe's test card). On a stack whose
Stage is prod it orders only with a payment method given (`--payment-method` or SMOKE_PAYMENT_METHOD:
with a live key test cards fail, and a real card is charged and refunded); without one, as with
`--no-order`, it runs read-only: the catalog and the refusals, no profile, no stock, no order.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from tools.shop_api import STAFF_GROUP, Api, id_token, wait_for

SMOKE_SKU = "smoke-test-product"
# The throwaway users' addresses: the SES mailbox simulator's, with a label that tells them apart from anyone's.
THROWAWAY_PREFIX = "success+smoke-"
# A throwaway user this old was left by a run killed before its cleanup (no run lasts an hour); younger
# ones may be another run's, still going.
STALE_AFTER = timedelta(hours=1)
DEFAULT_PAYMENT_METHOD = "pm_card_visa"
REQUIRED_OUTPUTS = ("ApiUrl", "UserPoolId", "UserPoolClientId")
# Every call to AWS ends: a few seconds to connect, 15 to answer, three attempts.
AWS_CONFIG = Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 3, "mode": "standard"})
DEFAULT_WAIT_SECONDS = 60.0
POLL_SECONDS = 0.5


class SmokeError(Exception):
    """What a step found wrong, in one sentence."""


@dataclass(frozen=True)
class Target:
    """The stack under test: its API, its user pool and app client, Cognito to reach the pool, and its Stage."""

    api_url: str
    user_pool_id: str
    client_id: str
    cognito: Any
    stage: str


def deployed_target(stack_name: str, region: str | None) -> Target:
    cloudformation = boto3.client("cloudformation", region_name=region, config=AWS_CONFIG)
    region = cloudformation.meta.region_name
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ValidationError":  # CloudFormation's word for "does not exist"
            raise SmokeError(f"no stack {stack_name} in {region}") from error
        raise
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    missing = [key for key in REQUIRED_OUTPUTS if not outputs.get(key)]
    if missing:
        raise SmokeError(f"stack {stack_name} has no output {', '.join(missing)}")
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    return Target(
        api_url=outputs["ApiUrl"],
        user_pool_id=outputs["UserPoolId"],
        client_id=outputs["UserPoolClientId"],
        cognito=boto3.client("cognito-idp", region_name=region, config=AWS_CONFIG),
        stage=parameters.get("Stage", ""),
    )


def local_target(state_dir: Path) -> Target:
    """The local stack's "outputs": the stack.json `python -m devstack up` writes."""
    path = state_dir / "stack.json"
    if not path.exists():
        raise SmokeError(f"no local stack description at {path}: start one with `make dev`")
    stack = json.loads(path.read_text())
    cognito = boto3.client(
        "cognito-idp",
        endpoint_url=stack["aws_endpoint_url"],
        region_name=stack["region"],
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=AWS_CONFIG,
    )
    return Target(stack["api_url"], stack["user_pool_id"], stack["user_pool_client_id"], cognito, stage="local")


def payment_method_for(stage: str, given: str | None, no_order: bool) -> str | None:
    """The payment method to order with; None: read-only."""
    if no_order:
        return None
    if given:
        return given
    return None if stage == "prod" else DEFAULT_PAYMENT_METHOD


class Report:
    """One line per step on stdout; whether any failed. No line shows what ``hidden`` holds (the users' addresses)."""

    def __init__(self) -> None:
        self.failed = False
        self.hidden: list[str] = []

    def step(self, name: str, action: Callable[[], str]) -> bool:
        try:
            detail = action()
        except Exception as error:  # any failure, AWS's, the network's or a finding, is that step's one line
            self.failed = True
            self.line("FAIL", name, self.sentence(error))
            return False
        self.line("ok", name, detail)
        return True

    def line(self, outcome: str, name: str, detail: str) -> None:
        print(f"{outcome:<4} {name}: {detail}", flush=True)

    def sentence(self, error: Exception) -> str:
        text = str(error) if isinstance(error, SmokeError | TimeoutError) else f"{type(error).__name__}: {error}"
        for secret in self.hidden:
            text = text.replace(secret, "<user>")
        return " ".join(text.split())[:300]


class ThrowawayUsers:
    """Users of the stack's pool that this run makes, signs in, and deletes."""

    def __init__(self, target: Target, report: Report) -> None:
        self.target, self.report = target, report
        self.created: list[str] = []

    def sign_in(self, staff: bool = False) -> Api:
        """A new user, made as an administrator (no invitation sent: SUPPRESS), with a verified email and a
        permanent password, signed in as the app client's callers are (USER_PASSWORD_AUTH)."""
        cognito, pool_id = self.target.cognito, self.target.user_pool_id
        email = f"{THROWAWAY_PREFIX}{uuid.uuid4().hex[:12]}@simulator.amazonses.com"
        password = secrets.token_urlsafe(24) + "aA1!"  # the pool's policy: lower, upper, digit, symbol
        self.report.hidden.append(email)
        self.created.append(email)  # before: a create that timed out may still have made the user
        cognito.admin_create_user(
            UserPoolId=pool_id,
            Username=email,
            UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
            MessageAction="SUPPRESS",
        )
        cognito.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=password, Permanent=True)
        if staff:
            cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=email, GroupName=STAFF_GROUP)
        return Api(self.target.api_url, id_token(cognito, self.target.client_id, email, password))

    def delete_all(self, stale_after: timedelta = STALE_AFTER) -> str:
        """This run's users, and those that runs killed before their cleanup left."""
        failed = [code for code in map(self.delete, self.created) if code]
        stale = self.left_by_earlier_runs(stale_after)
        failed += [code for code in map(self.delete, stale) if code]
        if failed:
            raise SmokeError(f"{len(failed)} throwaway users not deleted: {', '.join(sorted(set(failed)))}")
        return f"throwaway users deleted: {len(self.created)}" + (
            f", and {len(stale)} left by a run that was interrupted" if stale else ""
        )

    def delete(self, username: str) -> str | None:
        """None once the user is gone, else AWS's error code."""
        try:
            self.target.cognito.admin_delete_user(UserPoolId=self.target.user_pool_id, Username=username)
        except ClientError as error:
            code = str(error.response["Error"]["Code"])
            return None if code == "UserNotFoundException" else code
        return None

    def left_by_earlier_runs(self, stale_after: timedelta) -> list[str]:
        cutoff = datetime.now(UTC) - stale_after
        pages = self.target.cognito.get_paginator("list_users").paginate(
            UserPoolId=self.target.user_pool_id, Filter=f'email ^= "{THROWAWAY_PREFIX}"'
        )
        return [user["Username"] for page in pages for user in page["Users"] if user["UserCreateDate"] < cutoff]


def answer(status: int, body: Any, expected: int, request: str) -> str:
    """``request -> status code``, or SmokeError if the status is not the one expected."""
    code = body.get("code") if isinstance(body, dict) else None
    said = f"{request} -> {status}" + (f" {code}" if code else "")
    if status != expected:
        raise SmokeError(f"{said}, expected {expected}")
    return said


class Smoke:
    """The steps, in order; each returns its line's detail and keeps what later steps need."""

    def __init__(self, target: Target, report: Report, wait_seconds: float) -> None:
        self.target, self.report, self.wait_seconds = target, report, wait_seconds
        self.users = ThrowawayUsers(target, report)
        self.anonymous = Api(target.api_url)
        self.customer = self.stranger = self.staff = self.anonymous
        self.order_id = ""
        self.stocked = False

    def run(self, payment_method: str | None) -> None:
        if payment_method is None:
            self.report.line("skip", "order", "read-only (--no-order, or prod without SMOKE_PAYMENT_METHOD)")
            steps = [("users", self.sign_in_customer), ("catalog", self.catalog)]
        else:
            steps = [
                ("users", self.sign_in_everyone),
                ("register", self.register),
                ("stock", self.stock),
                ("order", lambda: self.order(payment_method)),
                ("confirmed", self.confirmed),
                ("cancel", self.cancel),
                ("refunded", self.refunded),
            ]
        steps += [
            ("401 without a token", self.refused_without_token),
            ("403 customer on a staff route", self.refused_staff_route),
        ]
        if payment_method is not None:
            steps.append(("404 someone else's order", self.refused_others_order))
        steps.append(("404 unknown order", self.refused_unknown_order))
        try:
            for name, action in steps:
                if not self.report.step(name, action):
                    break
        finally:
            if self.stocked:
                self.report.step("unstock", self.unstock)
            self.report.step("delete users", self.users.delete_all)

    def sign_in_customer(self) -> str:
        self.customer = self.users.sign_in()
        return "1 throwaway customer signed in"

    def sign_in_everyone(self) -> str:
        self.customer, self.stranger = self.users.sign_in(), self.users.sign_in()
        self.staff = self.users.sign_in(staff=True)
        return "3 throwaway users signed in (2 customers, 1 staff)"

    def register(self) -> str:
        status, body = self.customer.call("POST", "/users", {"name": "Smoke Test"})
        return answer(status, body, 201, "POST /users")

    def stock(self) -> str:
        status, body = self.staff.call("PUT", f"/inventory/{SMOKE_SKU}", self.product(available=1))
        said = answer(status, body, 200, f"PUT /inventory/{SMOKE_SKU}")
        self.stocked = True
        return f"{said}, available 1"

    def order(self, payment_method: str) -> str:
        key, body = str(uuid.uuid4()), {"items": [{"sku": SMOKE_SKU, "quantity": 1}], "payment_method": payment_method}

        # Until the orders service has seen UserRegistered it answers 422 unknown_user; a 4xx stores
        # nothing under the Idempotency-Key, so the same key is safely retried.
        def placed() -> tuple[int, Any] | None:
            status, order = self.customer.call("POST", "/orders", body, {"Idempotency-Key": key})
            known = not (status == 422 and isinstance(order, dict) and order.get("code") == "unknown_user")
            return (status, order) if known else None

        status, order = wait_for("the orders service to learn of the new user", placed, self.wait_seconds, POLL_SECONDS)
        said = answer(status, order, 201, "POST /orders")
        self.order_id = order["order_id"]
        return f"{said} {self.order_id} {order['status']}"

    def confirmed(self) -> str:
        started = time.monotonic()
        order = self.settled("the order to leave PENDING", lambda o: o["status"] != "PENDING")
        if order["status"] != "CONFIRMED":
            raise SmokeError(f"order {self.order_id} is {order['status']}: {order['reason']}")
        return f"CONFIRMED after {time.monotonic() - started:.1f} s, payment {order['payment_status']}"

    def cancel(self) -> str:
        status, order = self.customer.call("POST", f"/orders/{self.order_id}/cancel")
        said = answer(status, order, 200, "POST /orders/{order_id}/cancel")
        return f"{said} {order['status']}"

    def refunded(self) -> str:
        started = time.monotonic()
        order = self.settled("the refund", lambda o: o["payment_status"] == "refunded")
        return f"payment refunded after {time.monotonic() - started:.1f} s, order {order['status']}"

    def settled(self, what: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def read() -> dict[str, Any] | None:
            status, order = self.customer.call("GET", f"/orders/{self.order_id}")
            answer(status, order, 200, "GET /orders/{order_id}")
            return order if done(order) else None

        found: dict[str, Any] = wait_for(what, read, self.wait_seconds, POLL_SECONDS)
        return found

    def catalog(self) -> str:
        """The public route answers without a token; the product exists only once a full run has stocked it."""
        status, body = self.anonymous.call("GET", f"/inventory/{SMOKE_SKU}")
        absent = status == 404 and isinstance(body, dict) and body.get("code") == "not_found"
        return answer(status, body, 404 if absent else 200, f"GET /inventory/{SMOKE_SKU} (no token)")

    def refused_without_token(self) -> str:
        status, body = self.anonymous.call("GET", f"/orders/{self.order_id or uuid.uuid4()}")
        return answer(status, body, 401, "GET /orders/{order_id}")

    def refused_staff_route(self) -> str:
        status, body = self.customer.call("PUT", f"/inventory/{SMOKE_SKU}", self.product(available=1000))
        return answer(status, body, 403, f"PUT /inventory/{SMOKE_SKU}")

    def refused_others_order(self) -> str:
        status, body = self.stranger.call("GET", f"/orders/{self.order_id}")
        return answer(status, body, 404, "GET /orders/{order_id}")

    def refused_unknown_order(self) -> str:
        status, body = self.customer.call("GET", f"/orders/{uuid.uuid4()}")
        return answer(status, body, 404, "GET /orders/{unknown}")

    def unstock(self) -> str:
        status, body = self.staff.call("PUT", f"/inventory/{SMOKE_SKU}", self.product(available=0))
        return f"{answer(status, body, 200, f'PUT /inventory/{SMOKE_SKU}')}, available 0 (products have no DELETE)"

    @staticmethod
    def product(available: int) -> dict[str, Any]:
        return {"name": "Smoke test product (not for sale)", "unit_price_cents": 100, "available": available}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.smoke", description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="a deployed stack's name: its CloudFormation outputs say what to test")
    where.add_argument("--local", action="store_true", help="the local stack of `make dev` (its stack.json)")
    parser.add_argument("--region", help="the deployed stack's region; default: your AWS configuration's")
    parser.add_argument("--state-dir", type=Path, default=Path(".local"), help="the local stack's (default .local)")
    parser.add_argument(
        "--payment-method",
        default=os.environ.get("SMOKE_PAYMENT_METHOD") or None,
        help=f"what the order is paid with: default $SMOKE_PAYMENT_METHOD, else {DEFAULT_PAYMENT_METHOD} (not in prod)",
    )
    parser.add_argument("--no-order", action="store_true", help="read-only: the catalog and the refusals only")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_WAIT_SECONDS, help="seconds to wait for each step of the saga"
    )
    args = parser.parse_args(argv)
    # A cancelled CI job gets SIGTERM: as SystemExit it passes through the steps, and the cleanup still runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    report, targets = Report(), []

    def find_target() -> str:
        if args.local:
            targets.append(local_target(args.state_dir))
            return f"the local stack of {args.state_dir / 'stack.json'}"
        targets.append(deployed_target(args.stack, args.region))
        return f"{', '.join(REQUIRED_OUTPUTS)} of {args.stack} ({targets[0].cognito.meta.region_name})"

    if not report.step("stack", find_target):
        return 1
    target = targets[0]
    Smoke(target, report, args.timeout).run(payment_method_for(target.stage, args.payment_method, args.no_order))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
