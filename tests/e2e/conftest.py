"""Every end-to-end test module gets a local stack of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.running_stack import RunningStack, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as started:
        yield started
