"""End to end on the local stack: orders placed over HTTP by concurrent clients, timed from
POST /orders to CONFIRMED, next to the raw MongoDB insert rate on the same mongod.

Each client places an order, waits until it is CONFIRMED, then places the next. The wait
is a MongoDB change stream on the orders collection, not polling over HTTP, so measuring
adds no load. Containers are warmed first (one round of orders per client), as a steady
flow of orders keeps Lambda's warm. `python -m bench.end_to_end [orders] [clients]`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from bench.environment import ROOT
from devstack.demo import sign_in
from devstack.mongod import free_port
from tools.shop_api import Api

CLIENTS = 16
ORDERS = 960
CONFIRM_TIMEOUT_SECONDS = 60


@dataclass
class EndToEndResult:
    orders: int
    clients: int
    orders_per_second: float
    p50_confirm_ms: float
    p95_confirm_ms: float
    raw_inserts_per_second: float


def _raw_insert_rate(uri: str, seconds: float) -> float:
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    collection = client["bench_raw"]["inserts"]
    count, deadline = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        collection.insert_one({"n": count, "payload": "x" * 200})
        count += 1
    rate = count / (time.perf_counter() - started)
    client.drop_database("bench_raw")
    client.close()
    return rate


def measure_end_to_end(orders: int = ORDERS, clients: int = CLIENTS) -> EndToEndResult:
    with tempfile.TemporaryDirectory(prefix="shop-bench-stack-") as directory:
        state, output = Path(directory) / "state", Path(directory) / "stack.out"
        command = [sys.executable, "-m", "devstack", "--state-dir", str(state), "up", "--fresh"]
        # A clean environment: the stack must start its own MongoDB, not follow a MONGODB_URI.
        environment = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
        with output.open("wb") as log:
            process = subprocess.Popen(
                [*command, "--port", str(free_port())], cwd=ROOT, env=environment, stdout=log, stderr=log
            )
        try:
            deadline = time.monotonic() + 90
            while not (state / "stack.json").exists():
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the local stack did not start:\n{output.read_text()[-2000:]}")
                time.sleep(0.2)
            stack = json.loads((state / "stack.json").read_text())
            return _drive(stack, orders, clients)
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Confirmations:
    """Tells each waiting client when its order is CONFIRMED, from a change stream."""

    def __init__(self, mongodb_uri: str) -> None:
        self._client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri)
        self._waiting: dict[str, threading.Event] = {}
        self._confirmed: set[str] = set()
        self._lock = threading.Lock()
        pipeline = [{"$match": {"operationType": "update", "updateDescription.updatedFields.status": "CONFIRMED"}}]
        self._stream = self._client["orders"]["orders"].watch(pipeline)
        threading.Thread(target=self._follow, name="confirmations", daemon=True).start()

    def _follow(self) -> None:
        try:
            for change in self._stream:
                order_id = change["documentKey"]["_id"]
                with self._lock:
                    self._confirmed.add(order_id)
                    event = self._waiting.pop(order_id, None)
                if event is not None:
                    event.set()
        except Exception:  # closed at the end of the run
            return

    def wait(self, order_id: str) -> bool:
        with self._lock:
            if order_id in self._confirmed:
                return True
            event = self._waiting.setdefault(order_id, threading.Event())
        return event.wait(CONFIRM_TIMEOUT_SECONDS)

    def close(self) -> None:
        self._stream.close()
        self._client.close()


def _drive(stack: dict[str, Any], orders: int, clients: int) -> EndToEndResult:
    staff = Api(stack["api_url"], sign_in(stack, f"staff-{uuid.uuid4().hex[:8]}@example.com", staff=True))
    staff.call("PUT", "/inventory/BENCH-1", {"name": "Bench", "unit_price_cents": 100, "available": 1_000_000_000})
    api = Api(stack["api_url"], sign_in(stack, f"bench-{uuid.uuid4().hex[:8]}@example.com"))
    api.call("POST", "/users", {"name": "Bench"})
    body = {"items": [{"sku": "BENCH-1", "quantity": 1}], "payment_method": "pm_card_visa"}
    known = time.monotonic() + 30
    # the orders service learns of the user through its queue: 422 unknown_user until then
    while api.call("POST", "/orders", body)[0] != 201 and time.monotonic() < known:
        time.sleep(0.1)
    confirmations = Confirmations(stack["mongodb_uri"])
    durations: list[float] = []
    lock = threading.Lock()

    def client(count: int, timed: bool) -> None:
        for _ in range(count):
            started = time.perf_counter()
            status, order = api.call("POST", "/orders", body)
            if status != 201:
                raise RuntimeError(f"POST /orders answered {status} {order}")
            if not confirmations.wait(order["order_id"]):
                raise RuntimeError(f"order {order['order_id']} not CONFIRMED in {CONFIRM_TIMEOUT_SECONDS} s")
            if timed:
                with lock:
                    durations.append((time.perf_counter() - started) * 1000)

    def run(per_client: int, timed: bool) -> float:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            for done in [pool.submit(client, per_client, timed) for _ in range(clients)]:
                done.result()  # a client's failure fails the run
        return time.perf_counter() - started

    try:
        run(1, timed=False)  # warm-up: as many containers as the clients make busy
        elapsed = run(orders // clients, timed=True)
    finally:
        confirmations.close()
    durations.sort()
    return EndToEndResult(
        orders=len(durations),
        clients=clients,
        orders_per_second=len(durations) / elapsed,
        p50_confirm_ms=statistics.median(durations),
        p95_confirm_ms=durations[min(len(durations) - 1, int(len(durations) * 0.95))],
        raw_inserts_per_second=_raw_insert_rate(stack["mongodb_uri"], 2.0),
    )


if __name__ == "__main__":
    arguments = [int(argument) for argument in sys.argv[1:3]]
    result = measure_end_to_end(*arguments)
    print(
        f"{result.orders} orders, {result.clients} clients: {result.orders_per_second:.1f} orders/s, "
        f"POST -> CONFIRMED p50 {result.p50_confirm_ms:.0f} ms, p95 {result.p95_confirm_ms:.0f} ms; "
        f"raw MongoDB inserts {result.raw_inserts_per_second:.0f}/s"
    )
