"""One readable line per request and per delivered event, for a person watching the terminal."""

from __future__ import annotations

import sys
import threading
import time

_lock = threading.Lock()


def line(kind: str, text: str) -> None:
    with _lock:
        sys.stdout.write(f"{time.strftime('%H:%M:%S')} {kind:<5} {text}\n")
        sys.stdout.flush()
