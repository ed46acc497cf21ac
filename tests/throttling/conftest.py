"""A counter store per backend: memory, SQLite, PostgreSQL and Redis (real services)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need_service
from tests.throttling.stores import fresh_location, make_store
from throttling import CounterStore

SERVICE_PORTS = {"postgresql": ("PostgreSQL", 5432), "redis": ("Redis", 6379)}


def backend_params(*names: str) -> list[object]:
    marks = {"postgresql": pytest.mark.postgres, "redis": pytest.mark.redis}
    return [pytest.param(n, marks=marks[n]) if n in marks else n for n in names]


@pytest.fixture
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(backend, location) for the parametrized `backend`."""
    backend = request.param
    if backend in SERVICE_PORTS:
        need_service(*SERVICE_PORTS[backend])
    with fresh_location(backend, str(tmp_path)) as where:
        yield backend, where


@pytest.fixture
def store(location: tuple[str, str]) -> Iterator[CounterStore]:
    backend, where = location
    made, close = make_store(backend, where)
    yield made
    close()
