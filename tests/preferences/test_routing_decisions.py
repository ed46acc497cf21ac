"""Acceptance: consent and fallback decisions as they appear in GET /v1/events/{id}."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.helpers import event

ANNA = {"name": "Anna Kowalska", "phone": "+48512345678", "email": "anna@example.pl",
        "phone_verified": True, "email_verified": True}


def decisions(client: TestClient, event_id: str) -> dict[str, tuple[str, str]]:
    body = client.get(f"/v1/events/{event_id}").json()
    return {d["channel"]: (d["outcome"], d["reason"]) for d in body["decisions"]}


def test_withdrawn_marketing_sms_stops_campaign_but_not_parcel_notice(
    client: TestClient, drain
) -> None:
    client.put("/v1/customers/c-1001", json=ANNA)
    client.put("/v1/customers/c-1001/preferences",
               json={"channels": {"marketing": ["sms", "email"]}})
    for action in ("granted", "withdrawn"):
        client.post("/v1/customers/c-1001/consents", json={
            "purpose": "marketing", "channel": "sms", "action": action, "source": "checkout"})
    client.post("/v1/customers/c-1001/consents", json={
        "purpose": "marketing", "channel": "email", "action": "granted", "source": "checkout"})
    inline = {"id": "c-1001"}
    assert client.post("/v1/events", json=event("m-1", "marketing.campaign",
                                                customer=inline)).status_code == 202
    assert client.post("/v1/events", json=event("p-1", customer=inline)).status_code == 202
    drain()
    campaign = decisions(client, "m-1")
    assert campaign["sms"] == ("skipped", "consent_withdrawn")
    assert campaign["email"] == ("sent", "sent")
    assert campaign["push"] == ("skipped", "opted_out_channel")
    assert decisions(client, "p-1")["sms"] == ("sent", "sent")
    notes = client.get("/v1/notifications", params={"customer_id": "c-1001"}).json()["items"]
    sent = [(n["channel"], n["event_type"]) for n in notes]
    assert ("sms", "marketing.campaign") not in sent
    assert ("sms", "parcel.ready_for_pickup") in sent


def test_email_preferred_sms_fallback_without_email(client: TestClient, drain) -> None:
    client.put("/v1/customers/c-2", json={"name": "Jan Nowak", "phone": "+48601234567"})
    client.put("/v1/customers/c-2/preferences",
               json={"channels": {"transactional": ["email", "sms"]}})
    client.post("/v1/events", json=event("p-2", customer={"id": "c-2"}))
    drain()
    reply = client.get("/v1/events/p-2").json()
    email, sms = reply["decisions"][1], reply["decisions"][2]  # after the inbox
    assert (email["channel"], email["outcome"], email["reason"]) == ("email", "skipped",
                                                                      "no_address")
    assert "no address" in email["detail"]
    assert (sms["channel"], sms["outcome"]) == ("sms", "sent")
    assert [n["channel"] for n in reply["notifications"]] == ["sms"]


def test_inline_details_create_and_update_the_profile(client: TestClient, drain) -> None:
    client.post("/v1/events", json=event("p-3", customer={
        "id": "c-3", "name": "Olena", "phone": "067 123 4567", "locale": "fr",
        "email": "olena@example.com"}))
    drain()
    profile = client.get("/v1/customers/c-3").json()
    assert profile["phone"] is None  # a Ukrainian number without +380 is not a PL mobile
    assert (profile["email"], profile["locale"]) == ("olena@example.com", "pl")
    client.post("/v1/events", json=event("p-4", occurred_at="2026-11-25T15:20:00+01:00",
                                         customer={"id": "c-3", "phone": "+380671234567",
                                                   "locale": "uk"}))
    drain()
    profile = client.get("/v1/customers/c-3").json()
    assert (profile["phone"], profile["locale"]) == ("+380671234567", "uk")
