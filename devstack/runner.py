"""Runs a function as Lambda does: each invocation on a container (a worker process with its
own module state), containers started on demand up to the function's concurrency and reused
while warm; a container that crashes or times out is discarded.

A function with SnapStart (all of the template's) starts its containers as Lambda does: one
snapshot process per function imports the handler and runs the before-snapshot hooks once;
each container is a fork of it that runs the after-restore hooks ("restored"). Without it,
each container imports the handler itself ("cold start").
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, TextIO

from devstack.template import ROOT, FunctionSpec

# Containers per function at most, unless ReservedConcurrentExecutions says fewer: Lambda's
# account limit is 1000, a laptop's share is a few processes per function.
DEFAULT_CONCURRENCY = 4
# Lambda gives the init phase 10 s; a laptop starting several containers at once needs more.
INIT_TIMEOUT_SECONDS = 60
# Lambda gives loading the runtime and the after-restore hooks 10 s.
RESTORE_TIMEOUT_SECONDS = 10
# How long a stopped container may take to exit before it is killed.
STOP_SECONDS = 5
# Restored containers are not the runner's children: they are watched through pidfds (Linux).
RESTORES_SUPPORTED = hasattr(os, "pidfd_open")


@dataclass(frozen=True)
class Invocation:
    ok: bool
    result: Any
    error: str | None
    duration_ms: float
    timed_out: bool = False
    container: int | None = None  # the worker process's pid
    init_ms: float | None = None  # set when this invocation started the container (a cold start)
    restore_ms: float | None = None  # set when this invocation's container was just restored from the snapshot


def _worker_environment(spec: FunctionSpec, environment: dict[str, str]) -> dict[str, str]:
    return {**environment, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(spec.code_uri)])}


def _exit_reason(code: int) -> str:
    """What Lambda says of a runtime that exited with ``code`` (negative: killed by that signal)."""
    return f"Runtime exited with error: {f'signal {-code}' if code < 0 else f'exit status {code}'}"


class Container(ABC):
    """One worker process: serves one invocation at a time, requests and answers as JSON lines."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self._stopping = threading.Lock()  # the invoking thread and the stack's shutdown may both stop it
        self._closed = False
        self._requests: IO[str] | None = None
        self._answers: IO[str] | None = None

    @property
    @abstractmethod
    def pid(self) -> int | None: ...

    @abstractmethod
    def wait_ready(self) -> float:
        """Until the container can serve; how long its start took (init or restore), in milliseconds."""

    @abstractmethod
    def _exit_reason(self) -> str | None:
        """Why the process exited, as Lambda says it; None while it runs."""

    @abstractmethod
    def _wait_exit(self, timeout: float) -> bool:
        """Whether the process exited within ``timeout`` seconds."""

    @abstractmethod
    def _signal(self, signum: int) -> None: ...

    def _closing(self) -> None:
        """Let go of the channels once the process is gone."""
        for stream in (self._requests, self._answers):
            if stream is not None:
                with contextlib.suppress(OSError):  # a request still buffered for a dead worker
                    stream.close()

    def invoke(self, event: dict[str, Any]) -> Invocation:
        assert self._requests is not None
        with contextlib.suppress(BrokenPipeError, ConnectionError, ValueError):  # died or stopped: reading tells
            self._requests.write(json.dumps({"event": event, "timeout": self.spec.timeout}) + "\n")
            self._requests.flush()
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
        return not self._closed and self._exit_reason() is None

    def _read_line(self, timeout: float) -> dict[str, Any] | None:
        assert self._answers is not None
        try:
            readable, _, _ = select.select([self._answers], [], [], timeout)
            line = self._answers.readline() if readable else ""
        except (OSError, ValueError):  # stopped by another thread
            return None
        if readable and not line:  # the worker closed its answers: it is exiting
            self._wait_exit(STOP_SECONDS)
        if not line:
            return None
        loaded: dict[str, Any] = json.loads(line)
        return loaded

    def stop(self) -> None:
        with self._stopping:
            if self._closed:
                return
            self._closed = True
            if self.pid is not None and self._exit_reason() is None:
                self._signal(signal.SIGTERM)
                if not self._wait_exit(STOP_SECONDS):
                    self._signal(signal.SIGKILL)
                    self._wait_exit(STOP_SECONDS)
            self._closing()


class ColdContainer(Container):
    """A worker process that imports the handler itself: a cold start."""

    def __init__(self, spec: FunctionSpec, environment: dict[str, str], log: TextIO) -> None:
        super().__init__(spec)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devstack.worker", spec.handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=ROOT,
            env=_worker_environment(spec, environment),
        )
        self._requests, self._answers = self._process.stdin, self._process.stdout

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait_ready(self) -> float:
        ready = self._read_line(INIT_TIMEOUT_SECONDS)
        if ready is None or not ready.get("ready"):
            self.stop()
            raise RuntimeError(f"{self.spec.name} did not start: {self._exit_reason() or 'init timed out'}")
        return float(ready["init_ms"])

    def _exit_reason(self) -> str | None:
        code = self._process.poll()
        return None if code is None else _exit_reason(code)

    def _wait_exit(self, timeout: float) -> bool:
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _signal(self, signum: int) -> None:
        self._process.send_signal(signum)


class FunctionSnapshot:
    """A function's snapshot process (``devstack.worker --snapshot``): the handler imported and the
    before-snapshot hooks run once; ``fork`` makes a container of it. Talks over a SOCK_SEQPACKET
    Unix socket (its stdin): one message per request or answer, a fork request carrying the new
    container's socket."""

    def __init__(self, spec: FunctionSpec, environment: dict[str, str], log: TextIO) -> None:
        self.spec = spec
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devstack.worker", "--snapshot", spec.handler],
            stdin=theirs.fileno(),
            stdout=log,
            stderr=log,
            cwd=ROOT,
            env=_worker_environment(spec, environment),
        )
        theirs.close()
        self._asking = threading.Lock()  # one request and its answer at a time

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait_ready(self) -> float:
        """The init duration (import and before-snapshot hooks) in milliseconds."""
        self._control.settimeout(INIT_TIMEOUT_SECONDS)
        ready = self._receive()
        if not ready.get("ready"):
            raise RuntimeError(f"{self.spec.name}'s snapshot did not start")
        self._control.settimeout(RESTORE_TIMEOUT_SECONDS)
        return float(ready["init_ms"])

    def fork(self) -> tuple[int, socket.socket]:
        """A new container: its pid and this end of its channel."""
        ours, theirs = socket.socketpair()
        try:
            with self._asking:
                socket.send_fds(self._control, [b'{"fork": true}'], [theirs.fileno()])
                return int(self._receive()["pid"]), ours
        finally:
            theirs.close()

    def reap(self, pid: int) -> int:
        """The exit code of a container that has exited (the snapshot process is its parent)."""
        with self._asking:
            self._control.send(json.dumps({"reap": pid}).encode())
            return int(self._receive()["exit_code"])

    def _receive(self) -> dict[str, Any]:
        try:
            data = self._control.recv(4096)
        except (OSError, TimeoutError) as error:
            raise RuntimeError(f"{self.spec.name}'s snapshot does not answer: {error}") from error
        if not data:
            code = self._process.poll()
            raise RuntimeError(f"{self.spec.name}'s snapshot is gone: {_exit_reason(code) if code else 'closed'}")
        loaded: dict[str, Any] = json.loads(data)
        return loaded

    def stop(self) -> None:
        self._control.close()  # its loop ends
        try:
            self._process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class RestoredContainer(Container):
    """A fork of the function's snapshot, which runs the after-restore hooks: a SnapStart restore.
    Not this process's child: it is watched through a pidfd and reaped by the snapshot process."""

    def __init__(self, spec: FunctionSpec, snapshot: FunctionSnapshot) -> None:
        super().__init__(spec)
        self._snapshot = snapshot
        self._pid: int | None = None
        self._pidfd: int | None = None
        self._channel: socket.socket | None = None
        self._exited: str | None = None  # why, once it has exited and been reaped
        self._reaping = threading.Lock()  # reaped once, whichever thread sees it exit first

    @property
    def pid(self) -> int | None:
        return self._pid

    def wait_ready(self) -> float:
        """The restore duration, from asking the snapshot for a fork until the hooks have run."""
        started = time.perf_counter()
        with self._stopping:
            if self._closed:
                raise RuntimeError(f"{self.spec.name}: the local stack is stopping")
            self._pid, self._channel = self._snapshot.fork()
            self._pidfd = os.pidfd_open(self._pid)
            self._requests, self._answers = self._channel.makefile("w"), self._channel.makefile("r")
        ready = self._read_line(RESTORE_TIMEOUT_SECONDS)
        if ready is None or not ready.get("ready"):
            self.stop()
            raise RuntimeError(f"{self.spec.name} did not restore: {self._exit_reason() or 'restore timed out'}")
        return round((time.perf_counter() - started) * 1000, 1)

    def _exit_reason(self) -> str | None:
        with self._reaping:
            if self._exited is None and self._pid is not None and self._wait_exit(0):
                try:
                    self._exited = _exit_reason(self._snapshot.reap(self._pid))
                except RuntimeError:  # its parent is gone, and its exit status with it
                    self._exited = "Runtime exited with error: the function's snapshot process is gone"
            return self._exited

    def _wait_exit(self, timeout: float) -> bool:
        if self._pidfd is None:
            return False
        readable, _, _ = select.select([self._pidfd], [], [], timeout)
        return bool(readable)

    def _signal(self, signum: int) -> None:
        assert self._pidfd is not None
        with contextlib.suppress(ProcessLookupError):  # exited meanwhile
            signal.pidfd_send_signal(self._pidfd, signum)

    def _closing(self) -> None:
        self._exit_reason()  # reaped
        super()._closing()
        if self._channel is not None:
            self._channel.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class FunctionRunner:
    """A function's containers: an invocation takes an idle one, or starts one while under the
    function's concurrency, or waits for one to be free."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: dict[str, str],
        log_path: Path,
        concurrency: int,
        snapstart: bool = False,
    ) -> None:
        self.spec = spec
        self.environment = environment
        self.concurrency = concurrency
        self.snapstart = snapstart
        self.init_ms = 0.0  # of the first container, or of the snapshot
        self._log = log_path.open("a")  # every container's stderr: the function's own logs
        self._snapshot: FunctionSnapshot | None = None
        self._changed = threading.Condition()
        self._idle: list[Container] = []
        self._containers: set[Container] = set()  # idle and busy
        self._starting = 0
        self._stopped = False

    @property
    def snapshot_pid(self) -> int | None:
        return self._snapshot.pid if self._snapshot is not None else None

    def warm(self) -> None:
        """Takes the snapshot (with SnapStart) and starts the first container, so that a function
        that cannot even import fails the start."""
        if self.snapstart:
            self._snapshot = FunctionSnapshot(self.spec, self.environment, self._log)
            self.init_ms = self._snapshot.wait_ready()
        container = self._start_container()
        started_ms = container.wait_ready()
        if not self.snapstart:
            self.init_ms = started_ms
        self._release(container)

    def invoke(self, event: dict[str, Any]) -> Invocation:
        container, new = self._acquire()
        if container is None:
            error = "Rate Exceeded: reserved concurrency 0" if self.concurrency == 0 else "The local stack is stopping"
            return Invocation(False, None, error, 0.0)
        started_ms = None
        if new:
            try:
                started_ms = container.wait_ready()
            except RuntimeError as error:
                self._release(container)
                return Invocation(False, None, str(error), 0.0, container=container.pid)
        invocation = container.invoke(event)
        self._release(container)
        if started_ms is None:
            return invocation
        if isinstance(container, RestoredContainer):
            return replace(invocation, restore_ms=started_ms)
        return replace(invocation, init_ms=started_ms)

    def served_by(self, invocation: Invocation) -> str:
        """The function and the container that ran an invocation, for a log line."""
        start = ""
        if invocation.init_ms is not None:
            start = f" (cold start {invocation.init_ms:.0f}ms)"
        elif invocation.restore_ms is not None:
            start = f" (restored {invocation.restore_ms:.0f}ms)"
        return f"{self.spec.name}[{invocation.container}]{start}"

    def _acquire(self) -> tuple[Container | None, bool]:
        """A warm idle container, else a new (True: not started yet) one; None if the function may not run."""
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
        container: Container
        if self._snapshot is not None:
            container = RestoredContainer(self.spec, self._snapshot)
        else:
            container = ColdContainer(self.spec, self.environment, self._log)
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
        if self._snapshot is not None:
            self._snapshot.stop()
        self._log.close()
