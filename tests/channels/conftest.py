"""Loopback provider fakes, one fixture each, on 127.0.0.1 free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.apprise_json import FakeJsonEndpoint
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.smtp import FakeSmtpRelay
from tests.fakes.twilio import FakeTwilio
from tests.fakes.webpush import FakePushService


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
