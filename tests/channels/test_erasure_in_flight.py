"""Erasure racing a send in flight (issue 11, item 5): the send either completes before the
erasure and is then scrubbed, or never happens; the decision log says which."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from hub.customers import alive_customers, tombstone_key
from hub.gdpr import erase
from hub.models import Notification
from tests.channels.conftest import Hub, twilio_settings
from tests.fakes.twilio import FakeTwilio
from tests.helpers import event
from throttling import Limiter, ThrottleRequest


def _decisions(hub: Hub, event_id: str) -> dict[str, tuple[str, str]]:
    return {d["channel"]: (d["outcome"], d["reason"])
            for d in hub.event_view(event_id)["decisions"]}


def test_an_erasure_waits_for_the_call_in_flight_then_scrubs_it(
        make_hub: Callable[..., Hub], fake_twilio: FakeTwilio, database_url: str) -> None:
    hub = make_hub(database_url, **twilio_settings(fake_twilio))
    fake_twilio.latency = 1.0  # the provider takes a second to answer
    hub.post(event("e-1", type_="parcel.out_for_delivery"))
    worker = threading.Thread(target=hub.run_until_idle)
    worker.start()
    deadline = time.monotonic() + 10
    while fake_twilio.requests == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_twilio.requests == 1  # the call is in flight now
    erased = hub.client.delete("/v1/customers/c-1001", headers=hub.auth)
    worker.join(20)
    assert erased.status_code == 204
    assert len(fake_twilio.messages) == 1  # sent once, before the erasure finished
    assert _decisions(hub, "e-1")["sms"] == ("sent", "sent")
    with hub.runtime.db.sessions() as session:
        note = session.scalars(select(Notification)).one()
        # the erasure waited for the answer: the record was settled, then scrubbed
        assert note.status == "sent" and note.address is None
        assert note.customer_id.startswith("erased-")


class _ErasingLimiter:
    """Passes every message, but erases the customer on the first question: the erasure
    lands between the engine's load and its send step."""

    def __init__(self, inner: Limiter, erase_now: Callable[[], Any]) -> None:
        self.inner, self.erase_now, self.done = inner, erase_now, False

    def check(self, request: ThrottleRequest) -> Any:
        if not self.done:
            self.done = True
            self.erase_now()
        return self.inner.check(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_customer_erased_after_the_load_is_never_sent_to(
        make_hub: Callable[..., Hub], fake_twilio: FakeTwilio, database_url: str) -> None:
    hub = make_hub(database_url, **twilio_settings(fake_twilio))
    hub.post(event("e-1", type_="parcel.out_for_delivery"))
    runtime = hub.runtime
    key = tombstone_key(runtime.settings)
    stages = runtime.pipeline.stages
    object.__setattr__(stages, "limiter", _ErasingLimiter(
        stages.limiter, lambda: erase(runtime.db, "default", key, "c-1001", 1.0)))
    hub.run_until_idle()
    assert fake_twilio.messages == []
    decisions = _decisions(hub, "e-1")
    assert decisions["sms"] == ("skipped", "erased")
    assert all(outcome != "sent" for outcome, _ in decisions.values())


def test_alive_customers_leaves_out_erased_and_other_tenants(
        make_hub: Callable[..., Hub], database_url: str) -> None:
    hub = make_hub(database_url)
    for cid in ("c-1", "c-2"):
        assert hub.client.put(f"/v1/customers/{cid}", json={"name": "X"},
                              headers=hub.auth).status_code == 201
    key = tombstone_key(hub.runtime.settings)
    erase(hub.runtime.db, "default", key, "c-2", 1.0)
    with hub.runtime.db.transaction() as session:
        alive = alive_customers(session, key, {("default", "c-1"), ("default", "c-2"),
                                               ("other", "c-1")})
    assert alive == {("default", "c-1")}
