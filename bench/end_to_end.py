"""End to end on the local stack: orders placed over HTTP by concurrent clients, timed from
POST /orders to CONFIRMED, next to the raw MongoDB insert rate on the same mongod."""

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from bench.environment import ROOT
from devstack.demo import Api
from devstack.mongod import free_port


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


def measure_end_to_end(orders: int, clients: int) -> EndToEndResult:
    with tempfile.TemporaryDirectory(prefix="shop-bench-stack-") as directory:
        state = Path(directory) / "state"
        command = [
            sys.executable,
            "-m",
            "devstack",
            "--state-dir",
            str(state),
            "up",
            "--fresh",
            "--port",
            str(free_port()),
        ]
        # A clean environment: the stack must start its own MongoDB, not follow a MONGODB_URI.
        environment = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 90
            while not (state / "stack.json").exists():
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the local stack did not start")
                time.sleep(0.2)
            stack = json.loads((state / "stack.json").read_text())
            return _drive(stack, orders, clients)
        finally:
            process.terminate()
            process.wait(timeout=30)


def _drive(stack: dict[str, Any], orders: int, clients: int) -> EndToEndResult:
    api = Api(stack["api_url"])
    api.call("PUT", "/inventory/BENCH-1", {"name": "Bench", "unit_price_cents": 100, "available": 1_000_000})
    user = api.call("POST", "/users", {"email": f"e2e-{uuid.uuid4().hex[:8]}@example.com", "name": "Bench"})[1]
    first_order = {
        "user_id": user["user_id"],
        "items": [{"sku": "BENCH-1", "quantity": 1}],
        "payment_method": "pm_card_visa",
    }
    known = time.monotonic() + 30
    # the orders service learns of the user through its queue: 422 unknown_user until then
    while api.call("POST", "/orders", first_order)[0] != 201 and time.monotonic() < known:
        time.sleep(0.1)
    durations: list[float] = []
    lock = threading.Lock()

    def client(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            body = {
                "user_id": user["user_id"],
                "items": [{"sku": "BENCH-1", "quantity": 1}],
                "payment_method": "pm_card_visa",
            }
            order = api.call("POST", "/orders", body)[1]
            while api.call("GET", f"/orders/{order['order_id']}")[1]["status"] != "CONFIRMED":
                time.sleep(0.02)
            with lock:
                durations.append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=client, args=(orders // clients,)) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    durations.sort()
    return EndToEndResult(
        orders=len(durations),
        clients=clients,
        orders_per_second=len(durations) / elapsed,
        p50_confirm_ms=statistics.median(durations),
        p95_confirm_ms=durations[min(len(durations) - 1, int(len(durations) * 0.95))],
        raw_inserts_per_second=_raw_insert_rate(stack["mongodb_uri"], 2.0),
    )
