"""Fixtures of the integration tests that several modules share."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.conftest import LocalStripe
from tests.stripe_proxy import StripeProxy


@pytest.fixture
def proxy(localstripe: LocalStripe) -> Iterator[StripeProxy]:
    server = StripeProxy(localstripe.url)
    threading.Thread(target=server.serve_forever, name="stripe-proxy", daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()
