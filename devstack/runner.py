"""Runs one function in its own worker process, like one Lambda container."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from devstack.template import ROOT, FunctionSpec


@dataclass(frozen=True)
class Invocation:
    ok: bool
    result: Any
    error: str | None
    duration_ms: float


class FunctionRunner:
    """Invocations are serialised (one container); a crash or timeout replaces the container."""

    def __init__(self, spec: FunctionSpec, environment: dict[str, str], log_path: Path) -> None:
        self.spec = spec
        self.environment = environment
        self.log_path = log_path
        self.init_ms = 0.0
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._log: TextIO | None = None

    def start(self) -> None:
        self._log = self.log_path.open("a")
        pythonpath = os.pathsep.join([str(ROOT / "layers" / "shared"), str(self.spec.code_uri)])
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devstack.worker", self.spec.handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=ROOT,
            env={**self.environment, "PYTHONPATH": pythonpath},
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        ready = self._read_line(timeout)
        if ready is None or not ready.get("ready"):
            raise RuntimeError(f"{self.spec.name} did not start; see {self.log_path}")
        self.init_ms = float(ready["init_ms"])

    def invoke(self, event: dict[str, Any]) -> Invocation:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self.start()
                self.wait_ready()
            assert self._process is not None and self._process.stdin is not None
            self._process.stdin.write(json.dumps({"event": event, "timeout": self.spec.timeout}) + "\n")
            self._process.stdin.flush()
            answer = self._read_line(self.spec.timeout + 1)
            if answer is None:  # timed out or died: Lambda discards the container
                self.stop()
                return Invocation(False, None, f"Task timed out after {self.spec.timeout} s", self.spec.timeout * 1000)
            error = answer.get("error")  # first line only: the full traceback is in the function's log
            first_line = error.splitlines()[0][:200] if error else None
            return Invocation(answer["ok"], answer.get("result"), first_line, answer["duration_ms"])

    def _read_line(self, timeout: float) -> dict[str, Any] | None:
        assert self._process is not None and self._process.stdout is not None
        readable, _, _ = select.select([self._process.stdout], [], [], timeout)
        if not readable:
            return None
        line = self._process.stdout.readline()
        return json.loads(line) if line else None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
