"""Load with a fault: 16 clients place orders over HTTP while the stack's mongod is killed
(SIGKILL) and, seconds later, restarted on the same port and data directory.

While MongoDB is down the API answers 503 with Retry-After, never a dropped connection, a
5xx of another kind or a body that is not JSON; afterwards every order reaches a final
state and the stock adds up.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest

from devstack.mongod import MongoServer
from payments.domain import LEASE
from tests.e2e.running_stack import RunningStack, eventually
from tools.shop_api import Api

pytestmark = pytest.mark.e2e

CLIENTS = 16
STOCK = {"FAULT-SCARCE": 40, "FAULT-PLENTY": 100_000}  # the scarce one runs out: some orders are rejected
FINAL = {"CONFIRMED", "REJECTED"}  # REJECTED: out of stock, or still PENDING at the (--fast: 30 s) deadline
# Phases of the load, in seconds: before the kill, MongoDB down, after the restart. Down for
# more than twice the functions' 3 s server selection timeout: the requests in flight at the kill
# still answer 201 (their insert was committed; only pulling the published event waits out a
# server selection), so only those started after them can find MongoDB missing.
BEFORE_KILL, DOWN, AFTER_RESTART = 3.0, 8.0, 4.0


@dataclass
class Answer:
    status: int | None  # None: no answer at all (the connection failed)
    headers: dict[str, str]
    body: Any
    problem: str | None  # why this answer breaks the contract
    at: float  # when it arrived (time.monotonic)


def post_order(customer: Api, order: dict[str, Any]) -> Answer:
    host, port = customer.base_url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=60)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {customer.token}"}
    try:
        connection.request("POST", "/orders", json.dumps(order), headers)
        response = connection.getresponse()
        status, headers, raw = response.status, dict(response.getheaders()), response.read()
    except OSError as error:
        return Answer(None, {}, None, f"connection failed: {error!r}", time.monotonic())
    finally:
        connection.close()
    try:
        body = json.loads(raw)
    except ValueError:
        return Answer(status, headers, raw, f"{status} with a body that is not JSON: {raw[:100]!r}", time.monotonic())
    if status == 503 and "Retry-After" not in headers:
        problem: str | None = "503 without Retry-After"
    elif status >= 500 and status != 503:
        problem = f"{status} {body}"
    else:
        problem = None
    return Answer(status, headers, body, problem, time.monotonic())


def random_order(rng: random.Random) -> dict[str, Any]:
    items = [{"sku": "FAULT-PLENTY", "quantity": rng.randint(1, 3)}]
    if rng.random() < 0.5:
        items.append({"sku": "FAULT-SCARCE", "quantity": rng.randint(1, 2)})
    return {"items": items, "payment_method": "pm_card_visa"}


def all_orders(customer: Api, user_id: str) -> list[dict[str, Any]]:
    """Every order of the user, including any whose client got a 503 after it was stored."""
    orders, cursor = [], None
    while True:
        status, page = customer.call(
            "GET", f"/users/{user_id}/orders?limit=100" + (f"&cursor={cursor}" if cursor else "")
        )
        assert status == 200, page
        orders += page["orders"]
        cursor = page["next_cursor"]
        if cursor is None:
            return orders


@pytest.fixture
def restarted_mongods() -> Iterator[list[MongoServer]]:
    """mongods this test starts in place of the stack's: stopped after it."""
    started: list[MongoServer] = []
    yield started
    for server in started:
        server.stop()


def test_orders_under_load_survive_a_mongod_crash(stack: RunningStack, restarted_mongods: list[MongoServer]) -> None:
    mongod = stack.description["mongod"]
    assert mongod is not None, "the stack must run its own mongod for this test"
    staff, customer = stack.sign_in(staff=True), stack.sign_in()
    for sku, available in STOCK.items():
        product = {"name": sku, "unit_price_cents": 100, "available": available}
        assert staff.call("PUT", f"/inventory/{sku}", product)[0] == 200
    status, user = customer.call("POST", "/users", {"name": "F"})
    assert status == 201
    first = {"items": [{"sku": "FAULT-PLENTY", "quantity": 1}], "payment_method": "pm_card_visa"}
    placed = eventually(
        "the orders service to learn of the user", lambda: customer.call("POST", "/orders", first)[0] == 201
    )
    assert placed

    answers: list[Answer] = []
    stopping = threading.Event()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while not stopping.is_set():
            answers.append(post_order(customer, random_order(rng)))

    clients = [threading.Thread(target=client, args=(seed,)) for seed in range(CLIENTS)]
    for thread in clients:
        thread.start()
    try:
        time.sleep(BEFORE_KILL)
        os.kill(mongod["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(DOWN)
        restarted = MongoServer(Path(mongod["data_dir"]), port=mongod["port"])
        restarted_mongods.append(restarted)
        restarted.start()
        restarted_at = time.monotonic()
        time.sleep(AFTER_RESTART)
    finally:
        stopping.set()
        for thread in clients:
            thread.join()

    assert [answer.problem for answer in answers if answer.problem] == []
    assert any(answer.status == 503 for answer in answers if answer.at > killed_at), "MongoDB was never missed"
    assert any(answer.status == 201 for answer in answers if answer.at > restarted_at + 1), "no recovery"
    created = {answer.body["order_id"] for answer in answers if answer.status == 201}

    def every_order_final() -> list[dict[str, Any]] | None:
        orders = all_orders(customer, user["user_id"])
        return orders if all(order["status"] in FINAL for order in orders) else None

    # An invocation cut off by the crash can leave its payment's provider lease (90 s, longer than the
    # function's timeout) behind: the payment's messages wait for it (their visibility extended to the
    # lease's end, never spending their receives), and the payments sweep resumes it once it has
    # expired. No one redrives anything; whatever waits past the order deadline is rejected.
    orders = eventually("every order in a final state", every_order_final, timeout=LEASE.total_seconds() + 60)
    assert stack.dead_letter_depths() == dict.fromkeys(stack.description["dead_letter_queues"], 0)
    assert created <= {order["order_id"] for order in orders}
    assert any(order["status"] == "CONFIRMED" for order in orders)
    for sku, initial in STOCK.items():
        product = stack.call("GET", f"/inventory/{sku}")[1]
        confirmed = sum(
            line["quantity"]
            for order in orders
            if order["status"] == "CONFIRMED"
            for line in order["items"]
            if line["sku"] == sku
        )
        assert (sku, product["available"] + product["reserved"]) == (sku, initial)
        assert (sku, product["reserved"]) == (sku, confirmed)
