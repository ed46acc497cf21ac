"""Fixtures of the feedback and outgoing-webhook tests: a runtime on each backend, an API
client and a worker that drains the outbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.runtime import HubRuntime
from hub.worker import Worker
from tests.helpers import api_key, make_runtime


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[HubRuntime]:
    rt = make_runtime(database_url, tmp_path, public_base_url="http://testserver",
                      webhooks_allow_loopback=True)
    yield rt
    rt.db.dispose()


@pytest.fixture
def client(runtime: HubRuntime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as http:
        http.headers["Authorization"] = f"Bearer {api_key(runtime)}"
        yield http


@pytest.fixture
def drain(runtime: HubRuntime) -> Callable[[], None]:
    return Worker(runtime.db, runtime.pipeline, runtime.settings).drain
