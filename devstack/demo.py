"""`make demo`: walks the running local stack through the whole saga, over HTTP only
(plus the notifications database, to show the emails that were sent)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from pymongo import MongoClient

from devstack.provision import aws_client
from devstack.template import Template, load_template

STAFF_GROUP = "staff"

WAIT_SECONDS = 30


# Every local user's password: it meets the template's password policy.
LOCAL_PASSWORD = "Local-Passw0rd!"


class Api:
    """The shop's HTTP API, as one caller: ``token`` is the caller's ID token, None for nobody."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.token = token

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        signed_in = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **signed_in, **(headers or {})},
        )
        try:
            with urlopen(request, timeout=15) as response:
                return response.status, json.loads(response.read() or b"null")
        except HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


def sign_in(stack: dict[str, Any], email: str, staff: bool = False) -> str:
    """An ID token of the stack's user pool for ``email``, signing up (and confirming) a new
    user first, through Cognito's own API as a client would; ``staff`` adds them to the group."""
    cognito = aws_client("cognito-idp", str(stack["aws_endpoint_url"]))
    pool_id, client_id = stack["user_pool_id"], stack["user_pool_client_id"]
    try:
        cognito.sign_up(ClientId=client_id, Username=email, Password=LOCAL_PASSWORD)
        cognito.admin_confirm_sign_up(UserPoolId=pool_id, Username=email)
    except cognito.exceptions.UsernameExistsException:
        pass
    if staff:
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=email, GroupName=STAFF_GROUP)
    signed_in = cognito.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": LOCAL_PASSWORD},
    )
    return str(signed_in["AuthenticationResult"]["IdToken"])


def wait_for(what: str, probe: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.2)
    raise SystemExit(f"Timed out waiting for {what}")


def run_demo(stack: dict[str, Any]) -> int:
    started = time.perf_counter()
    email = f"demo-{uuid.uuid4().hex[:6]}@example.com"
    staff = Api(str(stack["api_url"]), sign_in(stack, f"staff-{uuid.uuid4().hex[:6]}@example.com", staff=True))
    api = Api(str(stack["api_url"]), sign_in(stack, email))

    def stock(label: str) -> None:
        parts = []
        for sku in ("DEMO-BOOK", "DEMO-PEN"):
            product = api.call("GET", f"/inventory/{sku}")[1]
            parts.append(f"{sku} available={product['available']} reserved={product['reserved']}")
        print(f"   stock {label}: " + "; ".join(parts))

    print("1. Staff stock two products")
    for sku, name, price, available in [("DEMO-BOOK", "A book", 2500, 5), ("DEMO-PEN", "A pen", 199, 2)]:
        status, product = staff.call(
            "PUT", f"/inventory/{sku}", {"name": name, "unit_price_cents": price, "available": available}
        )
        print(f"   PUT /inventory/{sku} -> {status} {product}")
    stock("now")

    print("2. A customer signs up (Cognito) and registers their profile")
    status, user = api.call("POST", "/users", {"name": "Demo Customer"})
    print(f"   POST /users -> {status} user_id={user['user_id']} email={user['email']}")

    def place(items: list[dict[str, Any]]) -> dict[str, Any]:
        key = str(uuid.uuid4())
        body = {"user_id": user["user_id"], "items": items, "payment_method": "pm_card_visa"}

        # Until the orders service has seen UserRegistered it answers 422 unknown_user; a 4xx
        # stores nothing under the Idempotency-Key, so the same key can safely be retried.
        def attempt() -> Any:
            status, order = api.call("POST", "/orders", body, {"Idempotency-Key": key})
            return order if status == 201 else None

        order: dict[str, Any] = wait_for("the orders service to learn of the user", attempt)
        print(f"   POST /orders {items} -> 201 order_id={order['order_id']} status={order['status']}")
        return order

    def settled(order_id: str, status: str) -> dict[str, Any]:
        order: dict[str, Any] = wait_for(
            f"order {order_id} to be {status}",
            lambda: (o := api.call("GET", f"/orders/{order_id}")[1]) and o["status"] == status and o,
        )
        print(f"   -> {order['status']} total_cents={order['total_cents']} reason={order['reason']}")
        return order

    print("3. Place an order the stock covers")
    first = place([{"sku": "DEMO-BOOK", "quantity": 2}, {"sku": "DEMO-PEN", "quantity": 1}])
    settled(first["order_id"], "CONFIRMED")
    stock("after the confirmed order")

    print("4. Place an order the stock cannot cover")
    second = place([{"sku": "DEMO-PEN", "quantity": 5}])
    settled(second["order_id"], "REJECTED")
    stock("after the rejected order")

    print("5. Cancel the confirmed order")
    status, cancelled = api.call("POST", f"/orders/{first['order_id']}/cancel")
    print(f"   POST /orders/{first['order_id']}/cancel -> {status} status={cancelled['status']}")
    wait_for("the stock to come back", lambda: api.call("GET", "/inventory/DEMO-BOOK")[1]["reserved"] == 0)
    stock("after the cancellation")

    print("6. Each order's status changes")
    for order_id in (first["order_id"], second["order_id"]):
        history = api.call("GET", f"/orders/{order_id}")[1]["history"]
        print(f"   {order_id}: " + " -> ".join(f"{entry['status']} ({entry['at']})" for entry in history))
    status, listing = api.call("GET", f"/users/{user['user_id']}/orders?limit=10")
    print(f"   GET /users/{{user_id}}/orders -> {status}, {len(listing['orders'])} orders, newest first")

    print("7. Emails sent (SES, as recorded by the notifications service)")
    client: MongoClient[dict[str, Any]] = MongoClient(str(stack["mongodb_uri"]))
    notifications = client[_notifications_database()]["notifications"]
    sent = wait_for(
        "4 emails",
        lambda: (
            (found := list(notifications.find({"to": email, "status": "SENT"}).sort("created_at", 1)))
            and len(found) >= 4
            and found
        ),
    )
    for message in sent:
        print(f"   to {message['to']}: {message['subject']}")
    print(f"Done in {time.perf_counter() - started:.1f} s.")
    return 0


def _notifications_database() -> str:
    function = next(spec for spec in Template(load_template()).functions() if spec.name == "NotificationsFunction")
    return str(function.environment["MONGODB_DATABASE"])
