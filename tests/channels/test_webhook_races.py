"""The same provider receipt posted twice at once: one applies, the twin is a no-op, no 500."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from hub.models import InboundKeyword
from tests.channels.conftest import twilio_settings
from tests.hub.test_no_5xx import race_on_insert, together

INBOUND_URL = "https://hub.example/v1/webhooks/twilio/inbound"


def test_twin_inbound_stop_webhooks(make_hub, fake_twilio, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite writers hold the database lock from their first read: no race")
    hub = make_hub(database_url=database_url, **twilio_settings(fake_twilio))
    race_on_insert(hub.runtime, "inbound_keywords")
    url, params, signature = fake_twilio.inbound_webhook(INBOUND_URL, "+48512345678", "STOP")
    path = url.removeprefix("https://hub.example")

    def post():
        return hub.client.post(path, data=params, headers=signature)

    replies = together(post, post)
    assert [r.status_code for r in replies] == [200, 200], [r.text for r in replies]
    with hub.runtime.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(InboundKeyword)) == 1
