"""Fixtures of the hub tests: a runtime on each store and an API client with an admin key
(a test module may define its own `runtime` with other settings; `client` then uses it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.runtime import HubRuntime
from tests.helpers import api_key, make_runtime


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[HubRuntime]:
    rt = make_runtime(database_url, tmp_path)
    yield rt
    rt.db.dispose()


@pytest.fixture
def client(runtime: HubRuntime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as c:
        c.headers["Authorization"] = f"Bearer {api_key(runtime)}"
        yield c
