"""Shared fixtures: stores on SQLite and on the real PostgreSQL, a runtime, an API client."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

PG_BASE = os.environ.get("HUB_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HUB_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"


def service_up(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def need_service(name: str, port: int) -> None:
    """Skips locally when a service is down; in CI (CI=true) a missing service is a failure."""
    if not service_up("127.0.0.1", port):
        if IN_CI:
            pytest.fail(f"{name} is not running on 127.0.0.1:{port} (required in CI)")
        pytest.skip(f"{name} is not running on 127.0.0.1:{port}")


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for this test run, dropped afterwards."""
    need_service("PostgreSQL", 5432)
    schema = f"hub_test_{secrets.token_hex(4)}"
    admin = create_engine(PG_BASE)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def fresh_pg_url(base_url: str) -> str:
    """A further fresh schema (for tests that need an empty store of their own)."""
    schema = f"hub_test_{secrets.token_hex(4)}"
    admin = create_engine(PG_BASE)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    return f"{PG_BASE}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL on each backend (a new schema per test on PostgreSQL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    need_service("PostgreSQL", 5432)
    url = fresh_pg_url(PG_BASE)
    schema = url.rsplit("%3D", 1)[1]

    def _drop() -> None:
        admin = create_engine(PG_BASE)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()

    request.addfinalizer(_drop)
    return url
