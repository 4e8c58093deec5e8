"""Runs in a fresh interpreter: a function's snapshot, as the local stack takes it. Imports one
handler module and runs the before-snapshot hooks once; then, for each event file, forks a
container that runs the after-restore hooks and serves that event, its first invocation. Prints
each container's timings as one JSON line, the last of its output."""

import json
import os
import sys
import time

from devstack.worker import (
    Handler,
    LocalContext,
    let_threads_end,
    load_handler,
    run_after_restore,
    run_before_snapshot,
)


def restore_and_invoke(handler: Handler, event: object, timeout: float, forked: float, answers: int) -> None:
    """In the forked container: after-restore hooks and the first invocation, timed from ``forked``."""
    started = time.perf_counter()
    run_after_restore()
    restored = time.perf_counter()
    result = handler(event, LocalContext.fresh(timeout=timeout))
    answered = time.perf_counter()
    measured = {
        "hooks_ms": (restored - started) * 1000,
        "first_ms": (answered - restored) * 1000,
        "total_ms": (answered - forked) * 1000,  # fork, hooks and first invocation
        "status": result.get("statusCode") if isinstance(result, dict) else None,
        "failures": len(result.get("batchItemFailures", [])) if isinstance(result, dict) else 0,
    }
    os.write(answers, json.dumps(measured).encode())


def main() -> None:
    handler_path, timeout, event_paths = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    handler = load_handler(handler_path)
    run_before_snapshot()
    let_threads_end()
    measured = []
    for event_path in event_paths:
        with open(event_path) as source:
            event = json.load(source)
        read_end, write_end = os.pipe()
        sys.stdout.flush()  # nothing buffered is copied into the container
        forked = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = 1
            try:
                restore_and_invoke(handler, event, timeout, forked, write_end)
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end) as answer:
            measured.append(json.loads(answer.read()))
        os.waitpid(pid, 0)
    print(json.dumps(measured))


if __name__ == "__main__":
    main()
