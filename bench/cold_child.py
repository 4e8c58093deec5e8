"""Runs in a fresh interpreter: import one handler module, serve one invocation, print timings."""

import importlib
import json
import sys
import time

from devstack.worker import LocalContext


def main() -> None:
    handler_path, event_path = sys.argv[1], sys.argv[2]
    with open(event_path) as source:
        event = json.load(source)
    started = time.perf_counter()
    module_name, _, attribute = handler_path.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    imported = time.perf_counter()
    result = handler(event, LocalContext.fresh(timeout=float(sys.argv[3]) if len(sys.argv) > 3 else 10.0))
    finished = time.perf_counter()
    status = result.get("statusCode") if isinstance(result, dict) else None
    failures = len(result.get("batchItemFailures", [])) if isinstance(result, dict) else 0
    print(
        json.dumps(
            {
                "import_ms": (imported - started) * 1000,
                "first_ms": (finished - imported) * 1000,
                "status": status,
                "failures": failures,
                "boto3_loaded": "boto3" in sys.modules,
            }
        )
    )


if __name__ == "__main__":
    main()
