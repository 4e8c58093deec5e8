"""End to end: start the local stack (`python -m devstack up`) and drive it over HTTP only.

Checks the saga's outcomes, a poison message reaching its dead-letter queue and being
redriven by the DLQ tool, and a clean shutdown. The stack runs with --fast (2 s visibility
timeouts), so a redrive after 5 receives takes seconds.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from devstack.demo import LOCAL_PASSWORD
from devstack.provision import aws_client
from tests.e2e.running_stack import RunningStack, eventually
from tools.shop_api import Api

pytestmark = pytest.mark.e2e


def test_saga_over_http(stack: RunningStack) -> None:
    staff, customer = stack.sign_in(staff=True), stack.sign_in()
    for sku, price, available in [("E2E-BOOK", 2500, 3), ("E2E-PEN", 199, 1)]:
        status, _ = staff.call(
            "PUT", f"/inventory/{sku}", {"name": sku, "unit_price_cents": price, "available": available}
        )
        assert status == 200
    status, user = customer.call("POST", "/users", {"name": "E2E"})
    assert status == 201
    status, again = customer.call("GET", f"/users/{user['user_id']}")
    assert (status, again) == (200, user)

    def place(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
        body = {"items": items, "payment_method": "pm_card_visa"}
        found = eventually(
            "the orders service to learn of the user",
            lambda: (r := customer.call("POST", "/orders", body, {"Idempotency-Key": key}))[0] == 201 and r[1],
        )
        replay = customer.call("POST", "/orders", body, {"Idempotency-Key": key})
        assert replay == (201, found)  # the same key and body: the same order, nothing new
        return dict(found)

    def settled(order_id: str, status: str) -> dict[str, Any]:
        return dict(
            eventually(
                f"{order_id} {status}",
                lambda: (o := customer.call("GET", f"/orders/{order_id}")[1])["status"] == status and o,
            )
        )

    def stock(sku: str) -> tuple[int, int]:
        product = stack.call("GET", f"/inventory/{sku}")[1]
        return product["available"], product["reserved"]

    confirmed = settled(
        place([{"sku": "E2E-BOOK", "quantity": 2}, {"sku": "E2E-PEN", "quantity": 1}], "k1")["order_id"], "CONFIRMED"
    )
    assert confirmed["total_cents"] == 2 * 2500 + 199
    assert confirmed["payment_status"] == "succeeded"
    assert (stock("E2E-BOOK"), stock("E2E-PEN")) == ((1, 2), (0, 1))

    rejected = settled(place([{"sku": "E2E-PEN", "quantity": 1}], "k2")["order_id"], "REJECTED")
    assert "E2E-PEN" in rejected["reason"]

    status, cancelled = customer.call("POST", f"/orders/{confirmed['order_id']}/cancel")
    assert (status, cancelled["status"]) == (200, "CANCELLED")
    eventually("stock to return", lambda: stock("E2E-BOOK") == (3, 0) and stock("E2E-PEN") == (1, 0))
    eventually("the refund", lambda: settled(confirmed["order_id"], "CANCELLED")["payment_status"] == "refunded")

    status, page = customer.call("GET", f"/users/{user['user_id']}/orders?limit=1")
    assert status == 200
    assert [order["order_id"] for order in page["orders"]] == [rejected["order_id"]]
    status, rest = customer.call("GET", f"/users/{user['user_id']}/orders?limit=1&cursor={page['next_cursor']}")
    assert [order["order_id"] for order in rest["orders"]] == [confirmed["order_id"]]

    client: MongoClient[dict[str, Any]] = MongoClient(stack.description["mongodb_uri"])
    notifications = client["notifications"]["notifications"]
    subjects = eventually(
        "5 emails",
        lambda: (
            len(s := [n["subject"] for n in notifications.find({"user_id": user["user_id"], "status": "SENT"})]) == 5
            and s
        ),
    )
    assert "Welcome to the shop" in subjects
    assert stack.call("GET", "/nowhere")[0] == 404
    assert stack.call("DELETE", "/users")[0] == 405
    assert stack.call("GET", f"/users/{user['user_id']}")[0] == 401  # not signed in


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (the stack's authorizer verifies; this only reads)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


@pytest.mark.parametrize("email_verified", ["false", "absent"])
def test_an_email_changed_by_its_user_and_not_verified_registers_no_profile(
    stack: RunningStack, email_verified: str
) -> None:
    """The attack of issue 15: a customer sets their own ``email`` to someone else's with
    UpdateUserAttributes, signs in again and registers, for the shop to write to that address.
    moto 5.2.5 applies the change at once and keeps ``email_verified`` as it was (it implements
    neither the pool's AttributesRequireVerificationBeforeUpdate nor the app client's
    WriteAttributes), so the token is the one Cognito gives without those settings: "false" for a
    verified user whose email changed (set here as Cognito would set it), absent for a user no one
    ever vouched for."""
    cognito = aws_client("cognito-idp", stack.description["aws_endpoint_url"])
    pool_id, client_id = stack.description["user_pool_id"], stack.description["user_pool_client_id"]
    attacker, victim = (f"e2e-{who}-{uuid.uuid4().hex[:8]}@example.com" for who in ("attacker", "victim"))

    def signed_in(email: str) -> dict[str, str]:
        result = cognito.initiate_auth(
            ClientId=client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": LOCAL_PASSWORD},
        )
        return dict(result["AuthenticationResult"])

    if email_verified == "false":
        stack.sign_in(email=attacker)  # the contract's sign-up: an administrator vouched for the address
        assert token_claims(signed_in(attacker)["IdToken"])["email_verified"] == "true"
    else:
        cognito.sign_up(ClientId=client_id, Username=attacker, Password=LOCAL_PASSWORD)
        cognito.admin_confirm_sign_up(UserPoolId=pool_id, Username=attacker)
    cognito.update_user_attributes(
        AccessToken=signed_in(attacker)["AccessToken"], UserAttributes=[{"Name": "email", "Value": victim}]
    )
    if email_verified == "false":
        cognito.admin_update_user_attributes(
            UserPoolId=pool_id, Username=victim, UserAttributes=[{"Name": "email_verified", "Value": "false"}]
        )
    token = signed_in(victim)["IdToken"]
    claims = token_claims(token)
    assert (claims["email"], claims.get("email_verified", "absent")) == (victim, email_verified)

    status, body = Api(stack.description["api_url"], token).call("POST", "/users", {"name": "Your bank"})

    assert (status, body["code"]) == (403, "email_not_verified")
    assert Api(stack.description["api_url"], token).call("GET", f"/users/{claims['sub']}")[0] == 404


def test_poison_message_reaches_its_dead_letter_queue_and_is_redriven(stack: RunningStack) -> None:
    sqs = stack.sqs()
    queues = stack.description["queues"]
    dead_letter_url = queues["InventoryDeadLetterQueue"]["url"]
    sqs.send_message(QueueUrl=queues["InventoryQueue"]["url"], MessageBody="this is not an event")

    def in_dead_letter_queue() -> bool:
        attributes = sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["ApproximateNumberOfMessages"])
        return attributes["Attributes"]["ApproximateNumberOfMessages"] == "1"

    eventually("the poison message in the dead-letter queue", in_dead_letter_queue, timeout=60)
    assert "InventoryDeadLetterQueue: 1 message(s)" in stack.devstack("dlq", "list")

    moved = stack.devstack("dlq", "redrive", "--queue", "InventoryDeadLetterQueue")

    assert "moved 1 message(s) back" in moved
    assert not in_dead_letter_queue()
    # back in its source queue, it fails again and returns to the dead-letter queue
    eventually("the poison message back in the dead-letter queue", in_dead_letter_queue, timeout=60)
    assert "(not an event)" in stack.log_path.read_text()


def test_failing_sns_invocation_is_retried_then_dead_lettered(stack: RunningStack) -> None:
    """The notifications function gets Lambda's two asynchronous retries, then its DLQ."""
    sns = aws_client("sns", stack.description["aws_endpoint_url"])
    topic_arn = stack.description["topics"]["ShopEventsTopic"]  # not the alarm topic
    attributes = {"event_type": {"DataType": "String", "StringValue": "OrderConfirmed"}}
    sns.publish(TopicArn=topic_arn, Message="not an event either", MessageAttributes=attributes)
    sqs = stack.sqs()
    dead_letter_url = stack.description["queues"]["NotificationsDeadLetterQueue"]["url"]

    def dead_lettered() -> list[dict[str, Any]]:
        return list(sqs.receive_message(QueueUrl=dead_letter_url, WaitTimeSeconds=1).get("Messages", []))

    [message] = eventually("the failed invocation in the function's dead-letter queue", dead_lettered, timeout=30)
    assert json.loads(message["Body"])["Records"][0]["Sns"]["Message"] == "not an event either"
    eventually("the dead-letter log line", lambda: "sent to the dead-letter queue" in stack.log_path.read_text())
    log = stack.log_path.read_text()
    assert "retry 1 in 1s" in log
    assert "retry 2 in 2s" in log


def _port_open(url: str) -> bool:
    host, port = url.split("//")[1].split("/", maxsplit=1)[0].split("?", maxsplit=1)[0].split(":")
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, int(port))) == 0


def worker_pids(stack_pid: int) -> set[int]:
    """The stack's function worker processes that are alive (Linux /proc): other stacks may be
    running on the machine."""
    pids = set()
    for process in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((process / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == stack_pid and b"devstack.worker" in (process / "cmdline").read_bytes():
                pids.add(int(process.name))
        except OSError:
            continue  # the process ended while we looked
    return pids


def test_clean_shutdown(stack: RunningStack) -> None:
    endpoints = [stack.description["api_url"], stack.description["aws_endpoint_url"], stack.description["mongodb_uri"]]
    assert all(_port_open(url) for url in endpoints)
    workers_before = worker_pids(stack.process.pid)

    stack.process.send_signal(signal.SIGINT)

    assert stack.process.wait(timeout=30) == 0
    assert not any(_port_open(url) for url in endpoints)
    assert workers_before
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers_before)
    assert "STACK stopped" in stack.log_path.read_text()
    assert os.path.exists(stack.state_dir / "stack.json")
