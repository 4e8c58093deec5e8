"""The inside of one Lambda execution environment: run by path as
``python3.13 -I -S -B devstack/lambda_bootstrap.py`` by devstack/lambda_runtime.py.

It imports the standard library only: with ``-I -S`` nothing else is importable until it sets
``sys.path`` to what Lambda's python3.13 runtime has: the function's code (/var/task), each layer's
``python`` folder (/opt/python), the standard library, then what the runtime ships
(/var/lang/lib/python3.13/site-packages: boto3, snapshot_restore_py). Then, as the managed runtime
does: import the handler (init; with SnapStart, init ends with the before-snapshot hooks, as when
Lambda publishes a version), run the after-restore hooks (the restore), invoke the handler once
with the event. The request comes as JSON on stdin; the answers go as JSON lines to the original
stdout; the function's own output (print, Powertools' JSON logs) goes to stderr.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The context object the python3.13 runtime passes to a handler."""

    def __init__(self, request: dict[str, Any], deadline: float) -> None:
        self.function_name: str = request["function_name"]
        self.function_version: str = request["function_version"]
        self.invoked_function_arn: str = request["invoked_function_arn"]
        self.memory_limit_in_mb: int = request["memory_size"]
        self.aws_request_id: str = request["request_id"]
        self.log_group_name: str = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name: str = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class RuntimeFault(Exception):
    """An error the runtime itself reports, named as Lambda names it (Runtime.ImportModuleError...)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def error_answer(error: BaseException) -> dict[str, Any]:
    """Lambda's error payload: errorMessage, errorType, stackTrace."""
    error_type = error.error_type if isinstance(error, RuntimeFault) else type(error).__name__
    frames = traceback.format_tb(error.__traceback__) if not isinstance(error, RuntimeFault) else []
    return {"errorMessage": str(error), "errorType": error_type, "stackTrace": frames}


def load_handler(handler: str) -> Any:
    """As the runtime does: 'package.module.function', with its error names and messages."""
    module_name, _, function_name = handler.rpartition(".")
    if not module_name:
        raise RuntimeFault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': not enough values to unpack")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        traceback.print_exc()
        raise RuntimeFault("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}") from error
    except SyntaxError as error:
        raise RuntimeFault("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {error}") from error
    if not hasattr(module, function_name):
        raise RuntimeFault("Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'")
    return getattr(module, function_name)


def run_snapstart_hooks(phase: str) -> None:
    """ "before snapshot" (at the end of init, when Lambda publishes the version): the hooks in
    reverse order of registration; "after restore" (when a container starts from the snapshot): in order."""
    try:
        import snapshot_restore_py
    except ImportError as error:
        raise RuntimeFault("Runtime.ImportModuleError", f"The runtime lacks snapshot_restore_py: {error}") from error
    if phase == "before snapshot":
        hooks, error_type = list(reversed(snapshot_restore_py.get_before_snapshot())), "Runtime.BeforeSnapshotError"
    else:
        hooks, error_type = list(snapshot_restore_py.get_after_restore()), "Runtime.AfterRestoreError"
    for function, args, kwargs in hooks:
        try:
            function(*args, **kwargs)
        except Exception as error:
            traceback.print_exc()
            raise RuntimeFault(error_type, f"A {phase} hook failed: {type(error).__name__}: {error}") from error


def modules_from(directory: str) -> list[str]:
    """Top-level modules imported from ``directory``."""
    prefix = os.path.join(directory, "")
    names = {
        name.partition(".")[0]
        for name, module in list(sys.modules.items())
        if (getattr(module, "__file__", None) or "").startswith(prefix)
    }
    return sorted(names)


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the function's stdout joins its logs on stderr, as both go to CloudWatch
    request = json.load(sys.stdin)
    standard_library = [path for path in sys.path if path]
    sys.path[:] = [request["task_root"], *request["layer_dirs"], *standard_library, request["runtime_dir"]]

    def answer(message: dict[str, Any]) -> None:
        answers.write(json.dumps(message) + "\n")

    started = time.perf_counter()
    try:
        handler = load_handler(request["handler"])
        if request["snapstart"]:
            run_snapstart_hooks("before snapshot")
        init_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        if request["snapstart"]:
            run_snapstart_hooks("after restore")
        restore_ms = (time.perf_counter() - started) * 1000 if request["snapstart"] else None
    except Exception as error:
        if not isinstance(error, RuntimeFault):
            traceback.print_exc()
        answer({"error": error_answer(error), "sys_path": sys.path})
        sys.exit(1)
    answer({"init_ms": init_ms, "restore_ms": restore_ms, "sys_path": sys.path})

    context = LambdaContext(request, time.monotonic() + request["timeout"])
    started = time.perf_counter()
    outcome: dict[str, Any]
    try:
        result = handler(request["event"], context)
    except Exception as error:
        traceback.print_exc()
        outcome = {"error": error_answer(error)}
    else:
        try:
            outcome = {"result": json.loads(json.dumps(result))}
        except (TypeError, ValueError) as error:
            marshal_error = RuntimeFault("Runtime.MarshalError", f"Unable to marshal response: {error}")
            outcome = {"error": error_answer(marshal_error)}
    outcome["duration_ms"] = (time.perf_counter() - started) * 1000
    outcome["max_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # ru_maxrss: KiB on Linux
    outcome["runtime_modules"] = modules_from(request["runtime_dir"])
    answer(outcome)


if __name__ == "__main__":
    main()
