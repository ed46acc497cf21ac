"""Loopback provider fakes, one fixture each, on 127.0.0.1 free ports."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub.alerts import OpsAlerts
from hub.api.app import create_app
from hub.models import Customer, OutboxJob
from hub.runtime import HubRuntime
from hub.worker import Worker
from preferences import preferences_from_json, preferences_to_json
from tests.fakes.apprise_json import FakeJsonEndpoint
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.smtp import FakeSmtpRelay
from tests.fakes.twilio import FakeTwilio
from tests.fakes.webpush import FakePushService
from tests.helpers import api_key, make_runtime


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def fake_sendgrid() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def fake_push() -> Iterator[FakePushService]:
    with FakePushService() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def fake_json() -> Iterator[FakeJsonEndpoint]:
    with FakeJsonEndpoint() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def fake_smtp(tmp_path: Path) -> Iterator[FakeSmtpRelay]:
    relay = FakeSmtpRelay(tmp_path).start()
    yield relay
    relay.stop()


@dataclass
class Hub:
    """A runtime wired to the fakes, its API client and a worker that the test drives."""

    runtime: HubRuntime
    client: TestClient
    token: str
    worker: Worker

    def post(self, body: dict[str, Any]) -> None:
        reply = self.client.post("/v1/events", json=body, headers=self.auth)
        assert reply.status_code in (200, 202), reply.text

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def run_until_idle(self, timeout: float = 20.0) -> None:
        """Runs jobs (including deferred ones when due) until none is pending."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.worker.run_once()
            with self.runtime.db.sessions() as session:
                pending = session.scalar(select(func.count()).where(OutboxJob.state == "pending"))
            if not pending:
                return
            time.sleep(0.02)
        raise AssertionError("jobs still pending")

    def event_view(self, event_id: str) -> dict[str, Any]:
        reply = self.client.get(f"/v1/events/{event_id}", headers=self.auth)
        assert reply.status_code == 200, reply.text
        return reply.json()  # type: ignore[no-any-return]

    def set_channels(self, customer_id: str, category: str, order: list[str]) -> None:
        with self.runtime.db.transaction() as session:
            customer = session.scalar(select(Customer).where(Customer.external_id == customer_id))
            assert customer is not None
            prefs = preferences_to_json(preferences_from_json(customer.preferences))
            prefs["channels"][category] = order
            customer.preferences = prefs


@pytest.fixture
def make_hub(tmp_path: Path) -> Iterator[Callable[..., Hub]]:
    """Builds hubs on a fresh SQLite store with settings overrides (provider URLs, keys)."""
    made: list[Hub] = []

    def build(database_url: str | None = None, **overrides: Any) -> Hub:
        overrides.setdefault("public_base_url", "https://hub.example")
        url = database_url or f"sqlite:///{tmp_path / f'hub{len(made)}.db'}"
        runtime = make_runtime(url, tmp_path, **overrides)
        client = TestClient(create_app(runtime))
        hub = Hub(
            runtime,
            client,
            api_key(runtime),
            Worker(
                runtime.db,
                runtime.pipeline,
                runtime.settings,
                OpsAlerts.from_settings(runtime.settings),
            ),
        )
        made.append(hub)
        return hub

    yield build
    for hub in made:
        hub.runtime.stop()


def twilio_settings(fake: FakeTwilio) -> dict[str, Any]:
    return {
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": fake.auth_token,
        "twilio_from": "+48500000000",
        "twilio_api_base_url": fake.url,
    }


def sendgrid_settings(fake: FakeSendGrid) -> dict[str, Any]:
    return {
        "sendgrid_api_key": fake.api_key,
        "sendgrid_api_host": fake.url,
        "sendgrid_webhook_public_key": fake.public_key,
    }
