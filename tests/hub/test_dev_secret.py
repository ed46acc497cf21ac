"""Every process refuses the development secret on a setup other machines can reach."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.api.app import app_from_settings
from hub.settings import DevSecretRefused, Settings, exposure, get_settings, refuse_dev_secret

LOOPBACK = [{}, {"public_base_url": "http://localhost:8000"},
            {"database_url": "postgresql+psycopg://postgres@127.0.0.1:5432/test"},
            {"database_url": "postgresql+psycopg:///hub"},  # Unix socket
            {"broker_url": "amqp://guest:guest@[::1]:5672/"}]
EXPOSED = [({"public_base_url": "https://hub.carrier.example"}, "HUB_PUBLIC_BASE_URL"),
           ({"database_url": "postgresql+psycopg://hub@db.internal:5432/hub"},
            "HUB_DATABASE_URL"),
           ({"broker_url": "amqp://hub@10.0.0.5:5672/"}, "HUB_BROKER_URL")]


def _settings(tmp_path: Path, **over: str) -> Settings:
    over.setdefault("database_url", f"sqlite:///{tmp_path / 'hub.db'}")
    return Settings(_env_file=None, **over)  # type: ignore[call-arg]


@pytest.mark.parametrize("over", LOOPBACK)
def test_loopback_setups_keep_the_dev_secret(tmp_path: Path, over: dict[str, str]) -> None:
    settings = _settings(tmp_path, **over)
    assert exposure(settings) is None
    refuse_dev_secret(settings)
    refuse_dev_secret(settings, "127.0.0.1")


@pytest.mark.parametrize(("over", "named"), EXPOSED)
def test_exposed_setups_refuse_it(tmp_path: Path, over: dict[str, str], named: str) -> None:
    with pytest.raises(DevSecretRefused, match=named):
        refuse_dev_secret(_settings(tmp_path, **over))
    refuse_dev_secret(_settings(tmp_path, secret_key="a-real-random-secret", **over))
    with pytest.raises(DevSecretRefused, match="listen address"):
        refuse_dev_secret(_settings(tmp_path), "0.0.0.0")


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}",
            "HUB_CONSOLE_OUTBOX_PATH": str(tmp_path / "outbox.jsonl"), **env}
    full.pop("HUB_SECRET_KEY", None)
    return subprocess.run([sys.executable, "-m", "hub", *args], env=full, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [["worker"], ["serve", "--port", "1"]])
def test_processes_refuse_to_start(tmp_path: Path, args: list[str]) -> None:
    result = _run(args, tmp_path, HUB_PUBLIC_BASE_URL="https://hub.carrier.example")
    assert result.returncode == 2, result.stderr
    assert "development HUB_SECRET_KEY" in result.stderr
    assert "HUB_PUBLIC_BASE_URL names hub.carrier.example" in result.stderr


def test_serve_refuses_a_public_listen_address(tmp_path: Path) -> None:
    result = _run(["serve", "--host", "0.0.0.0", "--port", "1"], tmp_path)
    assert result.returncode == 2 and "the listen address names 0.0.0.0" in result.stderr


def test_api_worker_processes_refuse_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's factory (each `hub serve --workers N` process, or uvicorn run by hand)."""
    monkeypatch.setenv("HUB_DATABASE_URL", f"sqlite:///{tmp_path / 'hub.db'}")
    monkeypatch.setenv("HUB_PUBLIC_BASE_URL", "https://hub.carrier.example")
    monkeypatch.delenv("HUB_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(DevSecretRefused):
            app_from_settings()
    finally:
        get_settings.cache_clear()
