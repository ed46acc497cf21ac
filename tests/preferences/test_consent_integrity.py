"""Consent integrity: the ledger's order is the hub's, a client's `at` is only evidence, and
the unsubscribe undo is short-lived, single-use and reverts exactly its own withdrawal."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from hub.api.app import create_app
from hub.consents import record_consent, spend_undo_token, stop_channel
from hub.links import unsubscribe_headers
from hub.runtime import HubRuntime
from preferences import ConsentAction
from tests.helpers import event, make_runtime

ANNA = {"name": "Anna Kowalska", "phone": "+48512345678", "email": "anna@example.pl",
        "phone_verified": True, "email_verified": True}
CAMPAIGN_CHANNELS = {"channels": {"marketing": ["email", "sms"]}}


def _decisions(client: TestClient, event_id: str) -> dict[str, tuple[str, str]]:
    body = client.get(f"/v1/events/{event_id}").json()
    return {d["channel"]: (d["outcome"], d["reason"]) for d in body["decisions"]}


def _grant(client: TestClient, channel: str, at: datetime) -> None:
    reply = client.post("/v1/customers/c-1/consents", json={
        "purpose": "marketing", "channel": channel, "action": "granted", "source": "checkout",
        "at": at.isoformat()})
    assert reply.status_code == 201, reply.text


def _unsubscribe_path(runtime: HubRuntime, channel: str = "email") -> str:
    header = unsubscribe_headers(runtime.settings, "c-1", "marketing", channel)
    return urlsplit(header["List-Unsubscribe"][1:-1]).path


def _withdraw(how: str, client: TestClient, runtime: HubRuntime) -> None:
    """Withdraws marketing the way a customer would: e-mail (one-click), SMS (STOP) or
    both (the preference center)."""
    if how == "one-click":
        reply = TestClient(client.app).post(_unsubscribe_path(runtime),
                                            data={"List-Unsubscribe": "One-Click"})
        assert reply.status_code == 200
    elif how == "sms-stop":
        with runtime.db.transaction() as session:
            assert "marketing" in stop_channel(session, "c-1", "sms")
    else:  # the preference center: untick every marketing channel
        link = client.post("/v1/customers/c-1/preference-link").json()["url"]
        form = {"transactional": ["sms", "email"], "preferred_transactional": "sms",
                "preferred_marketing": "email", "preferred_loyalty": "email",
                "frequency": "all"}
        assert client.post(urlsplit(link).path, data=form).status_code == 200


@pytest.mark.parametrize("how", ["one-click", "sms-stop", "preference-center"])
def test_a_later_withdrawal_beats_a_future_dated_grant(how: str, client: TestClient,
                                                       runtime: HubRuntime, drain) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    client.put("/v1/customers/c-1/preferences", json=CAMPAIGN_CHANNELS)
    # within the accepted clock skew, yet later than the withdrawal that follows
    _grant(client, "email", datetime.now(UTC) + timedelta(minutes=4))
    _grant(client, "sms", datetime.now(UTC) + timedelta(minutes=4))
    with runtime.db.transaction() as session:  # as the API stored it before the fix
        record_consent(session, "c-1", "marketing", "email", ConsentAction.GRANTED,
                       "checkout", at=datetime(2099, 1, 1, tzinfo=UTC))
        record_consent(session, "c-1", "marketing", "sms", ConsentAction.GRANTED,
                       "checkout", at=datetime(2099, 1, 1, tzinfo=UTC))
    _withdraw(how, client, runtime)
    state = client.get("/v1/customers/c-1/consents").json()["state"]
    channels = {"one-click": {"email"}, "sms-stop": {"sms"}}.get(how, {"email", "sms"})
    assert {s["channel"] for s in state if s["status"] == "withdrawn"} >= channels
    client.post("/v1/events", json=event("m-1", "marketing.campaign", customer={"id": "c-1"}))
    drain()
    decisions = _decisions(client, "m-1")
    for channel in channels:
        assert decisions[channel] == ("skipped", "consent_withdrawn")
    notes = client.get("/v1/notifications", params={"customer_id": "c-1"}).json()["items"]
    assert {n["channel"] for n in notes if n["event_type"] == "marketing.campaign"
            } == {"email", "sms"} - channels


@pytest.mark.parametrize("at", [
    "2099-01-01T00:00:00+00:00",  # the future
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    "9999-12-31T23:00:00+05:00",
    "1970-01-01T00:00:00+00:00",  # implausible evidence
])
def test_an_impossible_consent_time_is_a_422_and_writes_nothing(at: str, client: TestClient
                                                                ) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    reply = client.post("/v1/customers/c-1/consents", json={
        "purpose": "marketing", "channel": "email", "action": "granted", "source": "checkout",
        "at": at})
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["errors"][0]["path"] == "at"
    assert client.get("/v1/customers/c-1/consents").json()["history"] == []


def test_the_claimed_time_is_kept_as_evidence(client: TestClient) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    client.post("/v1/customers/c-1/consents", json={
        "purpose": "marketing", "channel": "email", "action": "granted", "source": "checkout",
        "at": "2026-01-01T10:00:00+01:00"})
    (row,) = client.get("/v1/customers/c-1/consents").json()["history"]
    assert row["at"] == "2026-01-01T09:00:00+00:00"
    assert datetime.fromisoformat(row["recorded_at"]) > datetime(2026, 6, 1, tzinfo=UTC)


def _confirm(anonymous: TestClient, path: str) -> str:
    """Submits the confirmation form; returns the undo token the page offers."""
    page = anonymous.post(path, data={"confirm": "1"})
    match = re.search(r'name="undo" value="([^"]+)"', page.text)
    assert page.status_code == 200 and match, page.text
    return match.group(1)


def _status(client: TestClient, channel: str = "email") -> str | None:
    state = client.get("/v1/customers/c-1/consents").json()["state"]
    return next((s["status"] for s in state if s["channel"] == channel), None)


def test_undo_reverts_its_own_withdrawal_once(client: TestClient, runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    _grant(client, "email", datetime.now(UTC))
    anonymous = TestClient(client.app)
    path = _unsubscribe_path(runtime)
    undo = _confirm(anonymous, path)
    assert _status(client) == "withdrawn"
    assert "Przywrócono" in anonymous.post(f"{path}/undo", data={"undo": undo}).text
    assert _status(client) == "granted"
    last = client.get("/v1/customers/c-1/consents").json()["history"][-1]
    assert (last["source"], last["text_version"]) == ("unsubscribe_link", "unsubscribe-undo")
    # unsubscribe again, then replay the spent token: it stays withdrawn
    _confirm(anonymous, path)
    replay = anonymous.post(f"{path}/undo", data={"undo": undo})
    assert "Nic nie zmieniono" in replay.text and _status(client) == "withdrawn"


def test_spent_undo_is_refused_by_another_process(client: TestClient, runtime: HubRuntime,
                                                  tmp_path) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    _grant(client, "email", datetime.now(UTC))
    path = _unsubscribe_path(runtime)
    anonymous = TestClient(client.app)
    undo = _confirm(anonymous, path)
    assert "Przywrócono" in anonymous.post(f"{path}/undo", data={"undo": undo}).text
    # a support withdrawal would also stop it; here: the other API process gets the replay
    client.post("/v1/customers/c-1/consents", json={
        "purpose": "marketing", "channel": "email", "action": "withdrawn", "source": "api"})
    other = make_runtime(runtime.settings.database_url, tmp_path / "other",
                         public_base_url="http://testserver")
    try:
        with TestClient(create_app(other)) as second:
            second.post(f"{path}/undo", data={"undo": undo})
    finally:
        other.db.dispose()
    assert _status(client) == "withdrawn"


def test_undo_after_a_support_withdrawal_changes_nothing(client: TestClient,
                                                         runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    _grant(client, "email", datetime.now(UTC))
    anonymous = TestClient(client.app)
    path = _unsubscribe_path(runtime)
    undo = _confirm(anonymous, path)
    client.post("/v1/customers/c-1/consents", json={
        "purpose": "marketing", "channel": "email", "action": "withdrawn", "source": "support"})
    before = client.get("/v1/customers/c-1/consents").json()["history"]
    reply = anonymous.post(f"{path}/undo", data={"undo": undo})
    assert "Nic nie zmieniono" in reply.text
    assert client.get("/v1/customers/c-1/consents").json()["history"] == before


def test_undo_token_is_bound_short_lived_and_not_forgeable(client: TestClient,
                                                           runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    for channel in ("email", "sms"):
        _grant(client, channel, datetime.now(UTC))
    anonymous = TestClient(client.app)
    email_path, sms_path = _unsubscribe_path(runtime), _unsubscribe_path(runtime, "sms")
    undo = _confirm(anonymous, email_path)
    _confirm(anonymous, sms_path)
    # the e-mail undo does not work on the SMS link
    anonymous.post(f"{sms_path}/undo", data={"undo": undo})
    assert _status(client, "sms") == "withdrawn"
    for forged in ("", "x", undo[:-3] + "abc"):
        anonymous.post(f"{email_path}/undo", data={"undo": forged})
    assert _status(client) == "withdrawn"
    # a token signed 31 minutes ago has expired
    token = email_path.rsplit("/", 1)[1]
    payload = URLSafeTimedSerializer(runtime.settings.secret_key.get_secret_value(),
                                     salt="hub.unsubscribe-undo.v1").loads(undo)
    old = URLSafeTimedSerializer(runtime.settings.secret_key.get_secret_value(),
                                 salt="hub.unsubscribe-undo.v1", signer=_HalfHourAgo)
    assert "Nic nie zmieniono" in anonymous.post(
        f"/u/{token}/undo", data={"undo": old.dumps(payload)}).text
    assert _status(client) == "withdrawn"
    assert "Przywrócono" in anonymous.post(f"{email_path}/undo", data={"undo": undo}).text


class _HalfHourAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 31 * 60


def test_transactional_undo_restores_the_channel_once(client: TestClient,
                                                      runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    path = urlsplit(unsubscribe_headers(runtime.settings, "c-1", "transactional", "email")
                    ["List-Unsubscribe"][1:-1]).path
    anonymous = TestClient(client.app)
    undo = _confirm(anonymous, path)
    channels = lambda: client.get("/v1/customers/c-1/preferences").json()["channels"]  # noqa: E731
    assert "email" not in channels()["transactional"]
    anonymous.post(f"{path}/undo", data={"undo": undo})
    assert "email" in channels()["transactional"]
    assert client.get("/v1/customers/c-1/consents").json()["history"] == []


def test_spending_an_undo_token_is_single_use_under_concurrency(runtime: HubRuntime) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def spend() -> None:
        barrier.wait(timeout=10)
        with runtime.db.transaction() as session:
            results.append(spend_undo_token(session, "token-1", timedelta(minutes=30)))

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [False, False, False, True]
