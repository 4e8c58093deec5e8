"""The local stack (`python -m devstack up --fresh --fast`) in a subprocess, as the end-to-end
tests drive it, and waiting for what it does asynchronously."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.demo import sign_in
from devstack.mongod import free_port
from devstack.provision import aws_client
from tools.shop_api import Api

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    state_dir: Path
    description: dict[str, Any]
    log_path: Path

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """As a caller who has not signed in."""
        return Api(self.description["api_url"]).call(method, path, body, headers)

    def sign_in(self, staff: bool = False, email: str | None = None) -> Api:
        """A caller signed in to the stack's user pool: a new user unless ``email`` is given."""
        email = email or f"e2e-{uuid.uuid4().hex[:8]}@example.com"
        return Api(self.description["api_url"], sign_in(self.description, email, staff))

    def sqs(self) -> Any:
        return aws_client("sqs", self.description["aws_endpoint_url"])

    def dead_letter_depths(self) -> dict[str, int]:
        """How many messages each dead-letter queue holds, in flight included."""
        sqs, depths = self.sqs(), {}
        for name, queue in self.description["dead_letter_queues"].items():
            attributes = sqs.get_queue_attributes(QueueUrl=queue["url"], AttributeNames=["All"])["Attributes"]
            depths[name] = int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            )
        return depths

    def devstack(self, *args: str) -> str:
        command = [sys.executable, "-m", "devstack", "--state-dir", str(self.state_dir), *args]
        return subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True, timeout=60).stdout


def eventually(what: str, probe: Callable[[], Any], timeout: float = 40) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def running_stack(workspace: Path, environment: dict[str, str] | None = None) -> Iterator[RunningStack]:
    """A stack of its own in ``workspace`` (``environment`` added to its own: STRIPE_API_BASE, say),
    stopped at the end unless a test stopped it."""
    state_dir, log_path = workspace / "state", workspace / "stack.out"  # --fresh empties state_dir
    command = [sys.executable, "-m", "devstack", "--state-dir", str(state_dir), "up", "--fresh", "--fast"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(free_port())],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(environment or {})},
        )
    stack_json = state_dir / "stack.json"
    try:
        eventually("stack.json", lambda: stack_json.exists() or process.poll() is not None, timeout=90)
        assert process.poll() is None, log_path.read_text()
        yield RunningStack(process, state_dir, json.loads(stack_json.read_text()), log_path)
    finally:
        if process.poll() is None:  # Ctrl-C, so that it stops its mongod and workers too
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
