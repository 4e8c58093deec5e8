"""The local stack serves the API's OpenAPI document and Swagger UI on it, offline."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.request import urlopen

import pytest

from tests.e2e.running_stack import RunningStack

pytestmark = pytest.mark.e2e

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_openapi_json_is_the_checked_in_document(stack: RunningStack) -> None:
    with urlopen(stack.description["api_url"] + "/openapi.json", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert json.loads(response.read()) == json.loads(OPENAPI.read_text())


def test_docs_is_swagger_ui_on_that_document_without_the_network(stack: RunningStack) -> None:
    with urlopen(stack.description["api_url"] + "/docs", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        page = response.read().decode()
    assert "SwaggerUIBundle(" in page and '"title": "Shop API"' in page
    assert "<script src" not in page and "<link" not in page  # script and style inline: works offline
