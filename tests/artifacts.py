"""What the tests of the built artifact and of SAM CLI need, and what happens without it.

`make test` builds the tools, both artifacts and the runtime's libraries first and sets
SHOP_REQUIRE_ARTIFACTS=1: there a missing one fails the test. A plain `pytest` skips, saying how
to make it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REQUIRED = os.environ.get("SHOP_REQUIRE_ARTIFACTS") == "1"


def require(path: Path, how: str) -> None:
    if path.exists():
        return
    message = f"{path} is missing: {how}"
    if REQUIRED:
        pytest.fail(f"{message} (SHOP_REQUIRE_ARTIFACTS=1: `make test` builds it first)")
    pytest.skip(message)
