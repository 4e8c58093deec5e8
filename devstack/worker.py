"""One Lambda "container": imports a handler once, then serves invocations from its parent.

Run as ``python -m devstack.worker HANDLER``; PYTHONPATH and the environment are the
function's. Requests and answers are JSON lines on stdin / the original stdout; the
function's own prints and logs go to stderr, which the parent writes to a log file.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid
from dataclasses import dataclass


@dataclass
class LocalContext:
    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline: float
    log_group_name: str = "local"
    log_stream_name: str = "local"
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))

    @classmethod
    def fresh(cls, function_name: str = "local", timeout: float = 10.0) -> LocalContext:
        """A context for one invocation that may run ``timeout`` seconds."""
        return cls(
            function_name=function_name,
            memory_limit_in_mb=int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")),
            invoked_function_arn=f"arn:aws:lambda:eu-west-1:123456789012:function:{function_name}",
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + timeout,
        )


def main() -> None:
    handler_path = sys.argv[1]
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the function's stdout (Powertools logs) joins stderr
    sys.stdout = sys.stderr
    started = time.perf_counter()
    module_name, _, attribute = handler_path.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    answers.write(json.dumps({"ready": True, "init_ms": round((time.perf_counter() - started) * 1000, 1)}) + "\n")
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
    for line in sys.stdin:
        request = json.loads(line)
        context = LocalContext.fresh(name, float(request["timeout"]))
        started = time.perf_counter()
        try:
            result = handler(request["event"], context)
            answer = {"ok": True, "result": result}
        except Exception as error:
            traceback.print_exc()
            answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        answer["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        answers.write(json.dumps(answer, default=str) + "\n")


if __name__ == "__main__":
    main()
