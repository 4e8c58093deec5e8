"""Warm requests in-process against the real mongod: latency, MongoDB commands and time."""

from __future__ import annotations

import importlib
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from typing import Any

from pymongo import monitoring

from bench.environment import ROOT, SERVICES, BenchEnvironment
from bench.paths import PATHS, FunctionPath
from devstack.worker import LocalContext


class MongoTimer(monitoring.CommandListener):
    """Sums the commands and their server round-trip time seen on this thread."""

    def __init__(self) -> None:
        self.local = threading.local()

    def reset(self) -> None:
        self.local.count, self.local.micros = 0, 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if hasattr(self.local, "count"):
            self.local.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if hasattr(self.local, "micros"):
            self.local.micros += event.duration_micros

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        if hasattr(self.local, "micros"):
            self.local.micros += event.duration_micros


class AwsTimer:
    """Time spent in calls to SNS and SES (moto here), which is neither our code nor MongoDB."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, owner: Any, name: str) -> None:
        original = getattr(owner, name)
        timer = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timer.seconds += time.perf_counter() - started

        setattr(owner, name, timed)


@dataclass
class WarmResult:
    path: FunctionPath
    p50_ms: float
    p99_ms: float
    commands: float
    mongo_p50_ms: float
    aws_p50_ms: float

    @property
    def ratio(self) -> float:
        """(handler time minus SNS/SES time) / MongoDB time, at p50."""
        return (self.p50_ms - self.aws_p50_ms) / self.mongo_p50_ms if self.mongo_p50_ms else float("nan")


@contextmanager
def quiet() -> Iterator[None]:
    """The handlers' metric and log lines go to stdout; keep them out of the report."""
    with open(os.devnull, "w") as sink, redirect_stdout(sink):
        yield


def measure_warm(environment: BenchEnvironment, calls: int) -> list[WarmResult]:
    mongo_timer = MongoTimer()
    monitoring.register(mongo_timer)  # before any client of the services exists
    for service in SERVICES:
        sys.path.insert(0, str(ROOT / "functions" / service))
    sys.path.insert(0, str(ROOT / "layers" / "shared"))
    aws_timer = AwsTimer()
    from notifications.mailer import SesMailer
    from shop_common.publisher import SnsPublisher

    aws_timer.wrap(SnsPublisher, "publish")
    aws_timer.wrap(SesMailer, "send")
    results = []
    saved_environment = dict(os.environ)
    try:
        for path in PATHS:
            results.append(_measure_path(path, environment, calls, mongo_timer, aws_timer))
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)
    return results


def _check(path: FunctionPath, result: Any) -> None:
    """A call that failed measures nothing: stop the run."""
    if isinstance(result, dict) and (
        result.get("statusCode") not in (None, 200, 201) or result.get("batchItemFailures")
    ):
        raise RuntimeError(f"{path.name} did not succeed: {str(result)[:500]}")


def _measure_path(
    path: FunctionPath, environment: BenchEnvironment, calls: int, mongo_timer: MongoTimer, aws_timer: AwsTimer
) -> WarmResult:
    os.environ.update(environment.service_env(path.service))  # read at the service's first call
    module_name, _, attribute = path.handler.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    for _ in range(max(5, calls // 10)):  # warm-up: first call builds the container's clients
        with quiet():
            _check(path, handler(path.make_event(environment), LocalContext.fresh(timeout=path.timeout)))
    latencies, commands, mongo, aws = [], [], [], []
    for _ in range(calls):
        event = path.make_event(environment)
        mongo_timer.reset()
        aws_timer.seconds = 0.0
        with quiet():
            started = time.perf_counter()
            result = handler(event, LocalContext.fresh(timeout=path.timeout))
            latencies.append((time.perf_counter() - started) * 1000)
        _check(path, result)
        commands.append(mongo_timer.local.count)
        mongo.append(mongo_timer.local.micros / 1000)
        aws.append(aws_timer.seconds * 1000)
    latencies.sort()
    return WarmResult(
        path,
        statistics.median(latencies),
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        statistics.mean(commands),
        statistics.median(mongo),
        statistics.median(aws),
    )
