"""Test-send is not a relay: its own scope, an allow-list, STOP honoured, a per-key rate
limit and a record of every attempt; sends go through the real Twilio and SendGrid SDKs to
the loopback fakes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from hub.api.app import create_app
from hub.db import utcnow
from hub.keys import Scope
from hub.models import TemplateTestSend
from tests.channels.conftest import sendgrid_settings, twilio_settings
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.twilio import FakeTwilio
from tests.helpers import api_key, make_runtime

ALLOWED = "+48512345678"
INBOUND = "/v1/webhooks/twilio/inbound"
SMS = {"event_type": "parcel.out_for_delivery", "channel": "sms", "locale": "pl",
       "tone": "informal"}


@pytest.fixture
def fakes() -> Iterator[tuple[FakeTwilio, FakeSendGrid]]:
    with FakeTwilio() as twilio, FakeSendGrid() as sendgrid:
        yield twilio, sendgrid  # type: ignore[misc]


def _hub(database_url: str, tmp_path: Path, fakes: tuple[FakeTwilio, FakeSendGrid],
         **overrides: Any) -> TestClient:
    twilio, sendgrid = fakes
    overrides.setdefault("test_recipients", ["+48 512 345 678"])
    runtime = make_runtime(database_url, tmp_path, public_base_url="https://hub.example",
                           **twilio_settings(twilio), **sendgrid_settings(sendgrid),
                           **overrides)
    client = TestClient(create_app(runtime))
    client.runtime = runtime  # type: ignore[attr-defined]
    client.headers["Authorization"] = f"Bearer {api_key(runtime, Scope.TEMPLATES_SEND)}"
    return client


def _bearer(client: TestClient, *scopes: Scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key(client.runtime, *scopes)}"}  # type: ignore[attr-defined]


def test_read_scope_cannot_send(database_url, tmp_path, fakes) -> None:
    client = _hub(database_url, tmp_path, fakes)
    for scopes in ((Scope.TEMPLATES_READ,), (Scope.EVENTS_WRITE, Scope.CUSTOMERS_WRITE)):
        reply = client.post("/v1/templates/test-send", json={**SMS, "to": ALLOWED},
                            headers=_bearer(client, *scopes))
        assert reply.status_code == 403
        assert reply.json()["required_scope"] == "templates:send"
    assert fakes[0].messages == []
    client.runtime.db.dispose()  # type: ignore[attr-defined]


def test_only_allow_listed_unsuppressed_recipients(database_url, tmp_path, fakes) -> None:
    twilio, sendgrid = fakes
    client = _hub(database_url, tmp_path, fakes,
                  test_recipients_by_tenant={"default": ["QA@example.pl"]})
    sent = client.post("/v1/templates/test-send", json={**SMS, "to": "+48 512-345-678"})
    assert sent.status_code == 200 and sent.json()["sent"], sent.text
    assert [m["to"] for m in twilio.messages] == [ALLOWED]
    assert twilio.messages[0]["body"] == sent.json()["preview"]["parts"]["body"]
    mail = client.post("/v1/templates/test-send", json={
        "event_type": "parcel.delivered", "channel": "email", "to": "qa@example.pl"})
    assert mail.status_code == 200 and len(sendgrid.mails) == 1, mail.text
    outside = client.post("/v1/templates/test-send", json={**SMS, "to": "+48601234567"})
    assert outside.status_code == 403
    assert outside.json()["type"].endswith("/recipient-not-allowed")
    push = client.post("/v1/templates/test-send", json={**SMS, "channel": "push",
                                                        "to": "https://fcm.example/x"})
    assert push.status_code == 422
    # the allowed number texts STOP: test-sends to it stop too
    url, params, signature = twilio.inbound_webhook(f"https://hub.example{INBOUND}", ALLOWED,
                                                    "STOP")
    assert client.post(INBOUND, data=params, headers=signature).status_code < 300
    stopped = client.post("/v1/templates/test-send", json={**SMS, "to": ALLOWED})
    assert stopped.status_code == 409
    assert stopped.json()["type"].endswith("/recipient-suppressed")
    assert len(twilio.messages) == 1
    records = client.get("/v1/templates/test-sends").json()
    assert [r["result"] for r in records] == ["suppressed", "not_allowed", "sent", "sent"]
    assert records[-1]["provider_message_id"] == twilio.messages[0]["sid"]
    assert all("512345678" not in r["recipient"] and "601234567" not in r["recipient"]
               for r in records)
    assert records[-1]["recipient"].endswith("678")
    client.runtime.db.dispose()  # type: ignore[attr-defined]


def test_rate_limit_per_minute_and_per_day(database_url, tmp_path, fakes) -> None:
    client = _hub(database_url, tmp_path, fakes, test_send_per_minute=3,
                  test_send_per_day=4)
    codes = [client.post("/v1/templates/test-send", json={**SMS, "to": ALLOWED}).status_code
             for _ in range(3)]
    assert codes == [200, 200, 200]
    limited = client.post("/v1/templates/test-send", json={**SMS, "to": ALLOWED})
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # the limit is per key: another key still has its budget
    other = _bearer(client, Scope.TEMPLATES_SEND)
    assert client.post("/v1/templates/test-send", json={**SMS, "to": ALLOWED},
                       headers=other).status_code == 200
    assert len(fakes[0].messages) == 4
    # the day window: move the records back two minutes, one more fits (4/day), then 429
    with client.runtime.db.transaction() as session:  # type: ignore[attr-defined]
        session.execute(update(TemplateTestSend).values(at=utcnow() - timedelta(minutes=2)))
    assert client.post("/v1/templates/test-send", json={**SMS, "to": ALLOWED}
                       ).status_code == 200
    daily = client.post("/v1/templates/test-send", json={**SMS, "to": ALLOWED})
    assert daily.status_code == 429 and int(daily.headers["retry-after"]) > 3600
    assert len(fakes[0].messages) == 5
    client.runtime.db.dispose()  # type: ignore[attr-defined]
