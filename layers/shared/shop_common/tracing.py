"""X-Ray tracing: the Powertools Tracer when the X-Ray SDK is switched on, else a stand-in.

Importing the X-Ray SDK (and the botocore session it builds) costs about 200 ms of every
cold start here (`make bench`, docs/BENCHMARKS.md), on read paths as much as on writes.
Lambda's active tracing (template: Tracing: Active) records every invocation without it;
set the template parameter XRaySdk=enabled for Powertools' per-method subsegments as well.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

Function = TypeVar("Function", bound=Callable[..., Any])


class _UntracedTracer:
    """Accepts the Powertools Tracer decorators and changes nothing."""

    def capture_method(self, method: Function | None = None, **_: Any) -> Any:
        return method if method is not None else (lambda decorated: decorated)

    def capture_lambda_handler(self, handler: Function | None = None, **_: Any) -> Any:
        return handler if handler is not None else (lambda decorated: decorated)


def make_tracer() -> Any:
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("true", "1"):
        return _UntracedTracer()
    from aws_lambda_powertools import Tracer

    return Tracer()
