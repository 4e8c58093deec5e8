"""`make demo`: walks the running local stack through the whole saga, over HTTP only
(plus the notifications database, to show the emails that were sent)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pymongo import MongoClient

from devstack.provision import aws_client
from devstack.template import Template, load_template
from tools.shop_api import STAFF_GROUP, Api, id_token, wait_for

WAIT_SECONDS = 30


# Every local user's password: it meets the template's password policy.
LOCAL_PASSWORD = "Local-Passw0rd!"


def sign_in(stack: dict[str, Any], email: str, staff: bool = False) -> str:
    """An ID token of the stack's user pool for ``email``, signing up a new user first through
    Cognito's own API as a client would, then confirming them and verifying their email as an
    administrator who vouches for the address (no one reads a verification code locally);
    ``staff`` adds them to the group."""
    cognito = aws_client("cognito-idp", stack["aws_endpoint_url"])  # None: moto's mock_aws, in tests
    pool_id, client_id = stack["user_pool_id"], stack["user_pool_client_id"]
    try:
        cognito.sign_up(ClientId=client_id, Username=email, Password=LOCAL_PASSWORD)
        cognito.admin_confirm_sign_up(UserPoolId=pool_id, Username=email)
        cognito.admin_update_user_attributes(
            UserPoolId=pool_id, Username=email, UserAttributes=[{"Name": "email_verified", "Value": "true"}]
        )
    except cognito.exceptions.UsernameExistsException:
        pass
    if staff:
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=email, GroupName=STAFF_GROUP)
    return id_token(cognito, client_id, email, LOCAL_PASSWORD)


def run_demo(stack: dict[str, Any]) -> int:
    started = time.perf_counter()
    email = f"demo-{uuid.uuid4().hex[:6]}@example.com"
    staff = Api(str(stack["api_url"]), sign_in(stack, f"staff-{uuid.uuid4().hex[:6]}@example.com", staff=True))
    api = Api(str(stack["api_url"]), sign_in(stack, email))

    print("1. Staff stock two products")
    stock_products(staff)
    show_stock(api, "now")

    print("2. A customer signs up (Cognito) and registers their profile")
    status, user = api.call("POST", "/users", {"name": "Demo Customer"})
    print(f"   POST /users -> {status} user_id={user['user_id']} email={user['email']}")

    def place(items: list[dict[str, Any]], payment_method: str = "pm_card_visa") -> dict[str, Any]:
        key = str(uuid.uuid4())
        body = {"user_id": user["user_id"], "items": items, "payment_method": payment_method}

        # Until the orders service has seen UserRegistered it answers 422 unknown_user; a 4xx
        # stores nothing under the Idempotency-Key, so the same key can safely be retried.
        def attempt() -> Any:
            status, order = api.call("POST", "/orders", body, {"Idempotency-Key": key})
            return order if status == 201 else None

        order: dict[str, Any] = wait_for("the orders service to learn of the user", attempt, WAIT_SECONDS)
        print(f"   POST /orders {items} {payment_method} -> 201 order_id={order['order_id']} status={order['status']}")
        return order

    def settled(order_id: str, state: str) -> dict[str, Any]:
        """Wait until the order's status or payment status is ``state``."""
        order: dict[str, Any] = wait_for(
            f"order {order_id} to be {state}",
            lambda: (
                (o := api.call("GET", f"/orders/{order_id}")[1]) and state in (o["status"], o["payment_status"]) and o
            ),
            WAIT_SECONDS,
        )
        print(
            f"   -> {order['status']} total_cents={order['total_cents']} payment_status={order['payment_status']} "
            f"reason={order['reason']}"
        )
        return order

    print("3. Place an order the stock covers, paid with a card that works (pm_card_visa)")
    paid = place([{"sku": "DEMO-BOOK", "quantity": 2}, {"sku": "DEMO-PEN", "quantity": 1}])
    settled(paid["order_id"], "CONFIRMED")
    show_stock(api, "after the paid order")

    print("4. Place an order the stock cannot cover")
    short = place([{"sku": "DEMO-PEN", "quantity": 5}])
    settled(short["order_id"], "REJECTED")
    show_stock(api, "after the order short of stock (untouched)")

    print("5. Place an order with a card declined when charged (pm_card_chargeCustomerFail)")
    declined = place([{"sku": "DEMO-BOOK", "quantity": 1}], "pm_card_chargeCustomerFail")
    settled(declined["order_id"], "REJECTED")
    wait_for(
        "the declined order's stock to come back",
        lambda: api.call("GET", "/inventory/DEMO-BOOK")[1]["reserved"] == 2,
        WAIT_SECONDS,
    )
    show_stock(api, "after the declined payment (its book back)")

    print("6. Cancel the paid order: its stock comes back and its charge is refunded")
    status, cancelled = api.call("POST", f"/orders/{paid['order_id']}/cancel")
    print(f"   POST /orders/{paid['order_id']}/cancel -> {status} status={cancelled['status']}")
    settled(paid["order_id"], "refunded")
    wait_for(
        "the stock to come back", lambda: api.call("GET", "/inventory/DEMO-BOOK")[1]["reserved"] == 0, WAIT_SECONDS
    )
    show_stock(api, "after the cancellation")

    print("7. Identity: what the API refuses")
    show_refusals(stack, api, staff, paid["order_id"], f"other-{email}")

    print("8. Each order's status changes")
    show_histories(api, user["user_id"], [paid["order_id"], short["order_id"], declined["order_id"]])

    print("9. Emails sent (SES, as recorded by the notifications service)")
    show_emails(stack, email, expected=6)  # welcome, confirmed, two rejected, cancelled, refunded
    print(f"Done in {time.perf_counter() - started:.1f} s.")
    return 0


def stock_products(staff: Api) -> None:
    for sku, name, price, available in [("DEMO-BOOK", "A book", 2500, 5), ("DEMO-PEN", "A pen", 199, 2)]:
        status, product = staff.call(
            "PUT", f"/inventory/{sku}", {"name": name, "unit_price_cents": price, "available": available}
        )
        print(f"   PUT /inventory/{sku} -> {status} {product}")


def show_stock(caller: Api, label: str) -> None:
    parts = []
    for sku in ("DEMO-BOOK", "DEMO-PEN"):
        product = caller.call("GET", f"/inventory/{sku}")[1]
        parts.append(f"{sku} available={product['available']} reserved={product['reserved']}")
    print(f"   stock {label}: " + "; ".join(parts))


def show_refusals(stack: dict[str, Any], customer: Api, staff: Api, order_id: str, stranger_email: str) -> None:
    """No token, a customer on a staff route, another customer's order; and staff reading it."""
    anonymous, stranger = Api(str(stack["api_url"])), Api(str(stack["api_url"]), sign_in(stack, stranger_email))
    restock = {"name": "A book", "unit_price_cents": 1, "available": 99}
    for caller, who, method, path, body in [
        (anonymous, "no token", "GET", f"/orders/{order_id}", None),
        (customer, "a customer", "PUT", "/inventory/DEMO-BOOK", restock),
        (stranger, "another customer", "GET", f"/orders/{order_id}", None),
        (staff, "staff", "GET", f"/orders/{order_id}", None),
    ]:
        status, answer = caller.call(method, path, body)
        print(f"   {who}: {method} {path} -> {status} {answer.get('code') or answer.get('status')}")


def show_histories(customer: Api, user_id: str, order_ids: list[str]) -> None:
    for order_id in order_ids:
        history = customer.call("GET", f"/orders/{order_id}")[1]["history"]
        print(f"   {order_id}: " + " -> ".join(f"{entry['status']} ({entry['at']})" for entry in history))
    status, listing = customer.call("GET", f"/users/{user_id}/orders?limit=10")
    print(f"   GET /users/{{user_id}}/orders -> {status}, {len(listing['orders'])} orders, newest first")


def show_emails(stack: dict[str, Any], email: str, expected: int) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(str(stack["mongodb_uri"]))
    notifications = client[_notifications_database()]["notifications"]
    sent = wait_for(
        f"{expected} emails",
        lambda: (
            (found := list(notifications.find({"to": email, "status": "SENT"}).sort("created_at", 1)))
            and len(found) >= expected
            and found
        ),
        WAIT_SECONDS,
    )
    for message in sent:
        first_line = message["body"].splitlines()[2]  # after the greeting and a blank line
        print(f"   to {message['to']}: {message['subject']}: {first_line}")


def _notifications_database() -> str:
    function = next(spec for spec in Template(load_template()).functions() if spec.name == "NotificationsFunction")
    return str(function.environment["MONGODB_DATABASE"])
