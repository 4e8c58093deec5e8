"""A function for testing the local Lambda emulation itself: it reports which container
(process) ran it and that container's module state (which processes ran its SnapStart hooks,
if any did), and sleeps, fails or crashes on request.

Invoked directly, the event says what to do: ``{"sleep": 0.5}``, ``{"fail": True}``,
``{"crash": True}``. Behind the local API, the path does: ``/sleep/0.5``, ``/fail``,
``/crash``, ``/malformed`` (a response that is not a proxy response).
"""

from __future__ import annotations

import os
import time
from typing import Any

from snapshot_restore_py import register_after_restore, register_before_snapshot

invocations = 0  # module state: each container counts only its own invocations
hooks_ran_in: dict[str, int | None] = {"before_snapshot": None, "after_restore": None}  # the pid of each hook's process


@register_before_snapshot
def _before_snapshot() -> None:
    hooks_ran_in["before_snapshot"] = os.getpid()


@register_after_restore
def _after_restore() -> None:
    hooks_ran_in["after_restore"] = os.getpid()


def handler(event: dict[str, Any], context: Any) -> Any:
    global invocations  # noqa: PLW0603 (the module state under test)
    invocations += 1
    if "httpMethod" in event:
        return _api(event["path"])
    started = time.time()
    _act(bool(event.get("crash")), bool(event.get("fail")), float(event.get("sleep", 0)))
    return {
        "pid": os.getpid(),
        "invocations": invocations,
        "hooks_ran_in": hooks_ran_in,
        "started": started,
        "ended": time.time(),
    }


def _api(path: str) -> Any:
    action, _, argument = path.strip("/").partition("/")
    if action == "malformed":
        return ["not", "a", "proxy", "response"]
    _act(action == "crash", action == "fail", float(argument) if action == "sleep" else 0)
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": '{"ok": true}'}


def _act(crash: bool, fail: bool, sleep: float) -> None:
    if crash:
        os._exit(3)
    if fail:
        raise RuntimeError("failing on request")
    time.sleep(sleep)
