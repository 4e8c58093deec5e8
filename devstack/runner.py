"""Runs a function as Lambda does: each invocation on a container (a worker process with its
own module state), containers started on demand up to the function's concurrency and reused
while warm; a container that crashes or times out is discarded."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from devstack.template import ROOT, FunctionSpec

# Containers per function at most, unless ReservedConcurrentExecutions says fewer: Lambda's
# account limit is 1000, a laptop's share is a few processes per function.
DEFAULT_CONCURRENCY = 4
# Lambda gives the init phase 10 s; a laptop starting several containers at once needs more.
INIT_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Invocation:
    ok: bool
    result: Any
    error: str | None
    duration_ms: float
    timed_out: bool = False
    container: int | None = None  # the worker process's pid
    init_ms: float | None = None  # set when this invocation started the container (a cold start)


class Container:
    """One worker process: imports the handler once, then serves one invocation at a time."""

    def __init__(self, spec: FunctionSpec, environment: dict[str, str], log: TextIO) -> None:
        self.spec = spec
        self._stopping = threading.Lock()  # the invoking thread and the stack's shutdown may both stop it
        self._closed = False
        pythonpath = os.pathsep.join([str(ROOT / "layers" / "shared"), str(spec.code_uri)])
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devstack.worker", spec.handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=ROOT,
            env={**environment, "PYTHONPATH": pythonpath},
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait_ready(self) -> float:
        """The init duration in milliseconds."""
        ready = self._read_line(INIT_TIMEOUT_SECONDS)
        if ready is None or not ready.get("ready"):
            self.stop()
            raise RuntimeError(f"{self.spec.name} did not start: {self._exit_reason() or 'init timed out'}")
        return float(ready["init_ms"])

    def invoke(self, event: dict[str, Any]) -> Invocation:
        assert self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError, ValueError):  # died or stopped: reading the answer tells
            self._process.stdin.write(json.dumps({"event": event, "timeout": self.spec.timeout}) + "\n")
            self._process.stdin.flush()
        answer = self._read_line(self.spec.timeout + 1)
        if answer is None:
            reason = self._exit_reason()
            self.stop()
            if reason:
                return Invocation(False, None, reason, 0.0, container=self.pid)
            timed_out = f"Task timed out after {self.spec.timeout} seconds"
            return Invocation(False, None, timed_out, self.spec.timeout * 1000, timed_out=True, container=self.pid)
        error = answer.get("error")  # first line only: the full traceback is in the function's log
        first_line = str(error).splitlines()[0][:200] if error else None
        return Invocation(answer["ok"], answer.get("result"), first_line, answer["duration_ms"], container=self.pid)

    @property
    def alive(self) -> bool:
        return not self._closed and self._process.poll() is None

    def _exit_reason(self) -> str | None:
        code = self._process.poll()
        if code is None:
            return None
        return f"Runtime exited with error: {f'signal {-code}' if code < 0 else f'exit status {code}'}"

    def _read_line(self, timeout: float) -> dict[str, Any] | None:
        assert self._process.stdout is not None
        try:
            readable, _, _ = select.select([self._process.stdout], [], [], timeout)
            line = self._process.stdout.readline() if readable else ""
        except (OSError, ValueError):  # stopped by another thread
            return None
        if readable and not line:  # the worker closed its stdout: it is exiting
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
        if not line:
            return None
        loaded: dict[str, Any] = json.loads(line)
        return loaded

    def stop(self) -> None:
        with self._stopping:
            self._closed = True
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()


class FunctionRunner:
    """A function's containers: an invocation takes an idle one, or starts one while under the
    function's concurrency, or waits for one to be free."""

    def __init__(self, spec: FunctionSpec, environment: dict[str, str], log_path: Path, concurrency: int) -> None:
        self.spec = spec
        self.environment = environment
        self.concurrency = concurrency
        self.init_ms = 0.0  # of the first container
        self._log = log_path.open("a")  # every container's stderr: the function's own logs
        self._changed = threading.Condition()
        self._idle: list[Container] = []
        self._containers: set[Container] = set()  # idle and busy
        self._starting = 0
        self._stopped = False

    def warm(self) -> None:
        """Starts the first container, so that a function that cannot even import fails the start."""
        container = self._start_container()
        self.init_ms = container.wait_ready()
        self._release(container)

    def invoke(self, event: dict[str, Any]) -> Invocation:
        container, cold = self._acquire()
        if container is None:
            error = "Rate Exceeded: reserved concurrency 0" if self.concurrency == 0 else "The local stack is stopping"
            return Invocation(False, None, error, 0.0)
        init_ms = None
        if cold:
            try:
                init_ms = container.wait_ready()
            except RuntimeError as error:
                self._release(container)
                return Invocation(False, None, str(error), 0.0, container=container.pid)
        invocation = container.invoke(event)
        self._release(container)
        return invocation if init_ms is None else replace(invocation, init_ms=init_ms)

    def served_by(self, invocation: Invocation) -> str:
        """The function and the container that ran an invocation, for a log line."""
        cold = f" (cold start {invocation.init_ms:.0f}ms)" if invocation.init_ms is not None else ""
        return f"{self.spec.name}[{invocation.container}]{cold}"

    def _acquire(self) -> tuple[Container | None, bool]:
        """A warm idle container, else a new (cold: True) one; None if the function may not run."""
        with self._changed:
            while not self._idle and len(self._containers) + self._starting >= self.concurrency:
                if self._stopped or self.concurrency == 0:
                    return None, False
                self._changed.wait()
            if self._stopped:
                return None, False
            if self._idle:
                return self._idle.pop(), False
            self._starting += 1
        try:
            return self._start_container(), True
        finally:
            with self._changed:
                self._starting -= 1
                self._changed.notify()

    def _start_container(self) -> Container:
        container = Container(self.spec, self.environment, self._log)
        with self._changed:
            self._containers.add(container)
            if self._stopped:  # the stack stopped while this one started: it must not outlive it
                container.stop()
        return container

    def _release(self, container: Container) -> None:
        with self._changed:
            if container.alive and not self._stopped:
                self._idle.append(container)
            else:
                self._containers.discard(container)
                container.stop()
            self._changed.notify()

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            containers = list(self._containers)
            self._idle.clear()
            self._changed.notify_all()
        for container in containers:
            container.stop()
        self._log.close()
