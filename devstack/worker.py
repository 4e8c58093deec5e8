"""One Lambda "container": imports a handler once, then serves invocations from its parent.

``python -m devstack.worker HANDLER`` is a cold container: it imports the handler, then reads
requests as JSON lines on stdin and writes answers to the original stdout.

``python -m devstack.worker --snapshot HANDLER`` is a function's snapshot (SnapStart): it imports
the handler and runs the before-snapshot hooks once, as Lambda does when it publishes a version.
Its stdin is a Unix socket to its runner, which sends a socket with each fork request: the forked
child is a container restored from the snapshot; it runs the after-restore hooks, then serves
invocations on that socket as a cold container does on its pipes.

PYTHONPATH and the environment are the function's; the function's own prints and logs go to
stderr, which the parent writes to a log file.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

Handler = Callable[[Any, Any], Any]
# fork copies only the calling thread: threads the before-snapshot hooks let go (the monitors of a
# closed MongoClient, which check every 0.5 s whether to stop) are given this long to end first.
THREADS_END_SECONDS = 5.0


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


def load_handler(handler_path: str) -> Handler:
    module_name, _, attribute = handler_path.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module_name), attribute)
    return handler


def run_before_snapshot() -> None:
    """As Lambda's runtime does: the before-snapshot hooks in the reverse order of registration."""
    from snapshot_restore_py import get_before_snapshot

    for function, args, kwargs in reversed(get_before_snapshot()):
        function(*args, **kwargs)


def run_after_restore() -> None:
    """As Lambda's runtime does: the after-restore hooks in the order of registration."""
    from snapshot_restore_py import get_after_restore

    for function, args, kwargs in get_after_restore():
        function(*args, **kwargs)


def serve(handler: Handler, requests: TextIO, answers: TextIO) -> None:
    """Invoke ``handler`` for each request line, one at a time, until the requests end."""
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
    for line in requests:
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
        answers.flush()


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _function_output_to_stderr() -> None:
    os.dup2(2, 1)  # the function's stdout (Powertools logs) joins stderr
    sys.stdout = sys.stderr


def cold(handler_path: str) -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    _function_output_to_stderr()
    started = time.perf_counter()
    handler = load_handler(handler_path)
    answers.write(json.dumps({"ready": True, "init_ms": _elapsed_ms(started)}) + "\n")
    serve(handler, sys.stdin, answers)


def snapshot(handler_path: str) -> None:
    control = socket.socket(fileno=sys.stdin.fileno())  # SOCK_SEQPACKET: one message per request
    _function_output_to_stderr()
    started = time.perf_counter()
    handler = load_handler(handler_path)
    run_before_snapshot()
    let_threads_end()
    control.send(json.dumps({"ready": True, "init_ms": _elapsed_ms(started)}).encode())
    while True:
        data, fds, _, _ = socket.recv_fds(control, 4096, 1)
        if not data:  # the runner is gone
            return
        request = json.loads(data)
        if "reap" in request:  # a container that has exited; its exit status, as Popen.returncode gives it
            _, status = os.waitpid(request["reap"], 0)
            control.send(json.dumps({"exit_code": os.waitstatus_to_exitcode(status)}).encode())
            continue
        pid = os.fork()
        if pid == 0:
            control.close()
            _restored(handler, fds[0])
        os.close(fds[0])
        control.send(json.dumps({"pid": pid}).encode())


def _restored(handler: Handler, channel_fd: int) -> None:
    """A container forked from the snapshot: the after-restore hooks, then invocations on the channel."""
    code = 1
    try:
        channel = socket.socket(fileno=channel_fd)
        requests, answers = channel.makefile("r"), channel.makefile("w")
        started = time.perf_counter()
        run_after_restore()
        answers.write(json.dumps({"ready": True, "restore_ms": _elapsed_ms(started)}) + "\n")
        answers.flush()
        serve(handler, requests, answers)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)  # never back into the snapshot's loop


def let_threads_end() -> None:
    """Before a fork: the threads that the before-snapshot hooks let go of end first."""
    deadline = time.monotonic() + THREADS_END_SECONDS
    for thread in threading.enumerate():
        if thread is not threading.main_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    running = [thread.name for thread in threading.enumerate() if thread is not threading.main_thread()]
    if running:
        print(f"Threads still running at the snapshot, not copied into its containers: {running}", file=sys.stderr)


def main() -> None:
    if sys.argv[1] == "--snapshot":
        snapshot(sys.argv[2])
    else:
        cold(sys.argv[1])


if __name__ == "__main__":
    main()
