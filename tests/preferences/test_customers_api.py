"""The customer API: profiles, validation, push subscriptions, preferences, consent ledger."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from hub.customers import deactivate_push_subscription, get_customer, load_recipient
from hub.keys import Scope
from hub.runtime import HubRuntime
from tests.helpers import api_key

ANNA = {"name": "Anna Kowalska", "phone": "+48 512 345 678", "email": "anna@example.pl",
        "locale": "pl", "tone": "formal", "phone_verified": True}
SUB = {"endpoint": "https://fcm.googleapis.com/fcm/send/abc123", "expirationTime": None,
       "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1"
                          "XbjhazAkj7I99e8QcYP7DkM",
                "auth": "tBHItJI5svbpez7KI4CCXg"}}


def test_put_creates_then_replaces(client: TestClient) -> None:
    created = client.put("/v1/customers/c-1", json=ANNA)
    assert created.status_code == 201
    body = created.json()
    assert body["phone"] == "+48512345678" and body["phone_verified"] is True
    assert (body["time_zone"], body["segment"]) == ("Europe/Warsaw", "individual")
    updated = client.put("/v1/customers/c-1", json={**ANNA, "phone": "+48601234567",
                                                   "phone_verified": False, "locale": "uk"})
    assert updated.status_code == 200
    assert (updated.json()["phone"], updated.json()["locale"]) == ("+48601234567", "uk")
    assert client.get("/v1/customers/c-1").json()["locale"] == "uk"


def _problem(reply: Any, status: int = 422) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    return reply.json()  # type: ignore[no-any-return]


def test_validation_problems(client: TestClient) -> None:
    locale = _problem(client.put("/v1/customers/c-1", json={"locale": "fr"}))
    assert locale["supported_locales"] == ["pl", "en", "uk", "de"]
    assert "pl, en, uk, de" in locale["detail"]
    landline = _problem(client.put("/v1/customers/c-1", json={"phone": "+48 22 123 45 67"}))
    assert landline["errors"][0] == {"path": "phone", "code": "phone_not_mobile",
                                     "message": landline["errors"][0]["message"]}
    assert "mobile" in landline["errors"][0]["message"]
    invalid = _problem(client.put("/v1/customers/c-1", json={"phone": "+48 123"}))
    assert invalid["errors"][0]["code"] == "phone_invalid"
    zone = _problem(client.put("/v1/customers/c-1", json={"time_zone": "Europe/Atlantis"}))
    assert zone["errors"][0]["code"] == "time_zone_unknown"
    _problem(client.put("/v1/customers/c-1", json={"email": "not-an-email"}))
    _problem(client.put("/v1/customers/c-1", json={"tone": "rude"}))
    assert client.get("/v1/customers/c-1").status_code == 404


def test_scope_is_required(client: TestClient, runtime: HubRuntime) -> None:
    reader = api_key(runtime, Scope.EVENTS_READ)
    reply = client.put("/v1/customers/c-1", json=ANNA,
                       headers={"Authorization": f"Bearer {reader}"})
    assert _problem(reply, 403)["required_scope"] == "customers:write"


def test_push_subscriptions(client: TestClient, runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    first = client.post("/v1/customers/c-1/push-subscriptions", json=SUB)
    assert first.status_code == 201
    second = {**SUB, "endpoint": "https://updates.push.services.mozilla.com/wpush/v2/xyz"}
    assert client.post("/v1/customers/c-1/push-subscriptions", json=second).status_code == 201
    assert len(client.get("/v1/customers/c-1").json()["push_subscriptions"]) == 2
    with runtime.db.transaction() as session:
        assert deactivate_push_subscription(session, second["endpoint"], "410 Gone")
        assert not deactivate_push_subscription(session, second["endpoint"], "410 Gone")
    with runtime.db.sessions() as session:
        profile = load_recipient(session, get_customer(session, "default", "c-1"), "k").profile
        assert [s.endpoint for s in profile.push_subscriptions] == [SUB["endpoint"]]
    gone = client.request("DELETE", "/v1/customers/c-1/push-subscriptions",
                          json={"endpoint": SUB["endpoint"]})
    assert gone.status_code == 204
    assert client.get("/v1/customers/c-1").json()["push_subscriptions"] == []
    plain = {**SUB, "endpoint": "http://insecure.example/push"}
    _problem(client.post("/v1/customers/c-1/push-subscriptions", json=plain))


def test_preferences_defaults_and_replace(client: TestClient) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    default = client.get("/v1/customers/c-1/preferences").json()
    assert default["channels"] == {
        "transactional": ["app_push", "sms", "email", "push", "inbox"],
        "loyalty": ["email", "app_push", "push", "sms", "inbox"],
        "marketing": ["email", "app_push", "push", "sms", "inbox"],
        "feedback": ["email", "app_push", "push", "sms", "inbox"]}
    assert (default["frequency"], default["quiet_hours"]) == ("all", None)
    new = {"channels": {"transactional": ["email", "sms"], "marketing": []},
           "event_opt_outs": ["parcel.in_transit"], "frequency": "important",
           "quiet_hours": {"start": "21:30", "end": "07:00"}, "locale": "de", "tone": "informal"}
    saved = client.put("/v1/customers/c-1/preferences", json=new).json()
    assert saved["channels"]["transactional"] == ["email", "sms"]
    assert saved["channels"]["marketing"] == []
    assert saved["channels"]["loyalty"] == ["email", "app_push", "push", "sms", "inbox"]
    assert saved["quiet_hours"] == {"start": "21:30", "end": "07:00"}
    assert (saved["locale"], saved["tone"], saved["frequency"]) == ("de", "informal", "important")
    assert client.get("/v1/customers/c-1/preferences").json() == saved
    _problem(client.put("/v1/customers/c-1/preferences",
                        json={"channels": {"transactional": ["sms", "sms"]}}))
    _problem(client.put("/v1/customers/c-1/preferences", json={"event_opt_outs": ["nope"]}))
    _problem(client.put("/v1/customers/c-1/preferences", json={"locale": "fr"}))


def test_consent_ledger_is_append_only_with_derived_state(client: TestClient) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    steps = [("granted", "checkout"), ("withdrawn", "support"), ("granted", "api")]
    ids = []
    for action, source in steps:
        reply = client.post("/v1/customers/c-1/consents", json={
            "purpose": "marketing", "channel": "sms", "action": action, "source": source,
            "text_version": "tc-7"})
        assert reply.status_code == 201
        ids.append(reply.json()["recorded"]["id"])
    client.post("/v1/customers/c-1/consents", json={
        "purpose": "loyalty", "channel": "email", "action": "withdrawn", "source": "support",
        "legal_basis": "consent", "at": "2026-01-01T10:00:00+01:00"})
    ledger = client.get("/v1/customers/c-1/consents").json()
    # recorded order, not the (earlier) claimed time of the loyalty row
    assert [h["id"] for h in ledger["history"]][:3] == ids
    assert ledger["history"][-1]["at"] == "2026-01-01T09:00:00+00:00"
    assert [h["action"] for h in ledger["history"] if h["purpose"] == "marketing"] == [
        "granted", "withdrawn", "granted"]
    assert {(s["purpose"], s["channel"], s["status"]) for s in ledger["state"]} == {
        ("marketing", "sms", "granted"), ("loyalty", "email", "withdrawn")}
    bad = client.post("/v1/customers/c-1/consents", json={
        "purpose": "spam", "channel": "sms", "action": "granted", "source": "checkout"})
    _problem(bad)
    naive = client.post("/v1/customers/c-1/consents", json={
        "purpose": "marketing", "channel": "sms", "action": "granted", "source": "checkout",
        "at": "2026-01-01T10:00:00"})
    _problem(naive)
    missing = client.post("/v1/customers/nobody/consents", json={
        "purpose": "marketing", "channel": "sms", "action": "granted", "source": "checkout"})
    _problem(missing, 404)


def test_preference_link_is_signed(client: TestClient) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    link = client.post("/v1/customers/c-1/preference-link").json()
    assert link["url"].startswith("http://testserver/p/")
    page = client.get(link["url"])
    assert page.status_code == 200 and 'lang="pl"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert client.post("/v1/customers/nobody/preference-link").status_code == 404
