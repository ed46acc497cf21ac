"""Signed links, List-Unsubscribe headers, one-click unsubscribe and the preference form."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from hub.consents import stop_channel, withdraw_consent
from hub.customers import find_customers_by_phone
from hub.links import (
    PreferenceScope,
    message_links,
    preference_link,
    read_preference_token,
    read_unsubscribe_token,
    unsubscribe_headers,
    unsubscribe_token,
)
from hub.runtime import HubRuntime
from hub.settings import Settings

S = Settings(database_url="sqlite://", public_base_url="https://hub.example/")
ANNA = {"name": "Anna Kowalska", "phone": "+48512345678", "email": "anna@example.pl",
        "email_verified": True, "phone_verified": True}


def test_unsubscribe_headers_follow_rfc_8058() -> None:
    headers = unsubscribe_headers(S, "c-1", "marketing", "email")
    assert set(headers) == {"List-Unsubscribe", "List-Unsubscribe-Post"}
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = headers["List-Unsubscribe"]
    assert url.startswith("<https://hub.example/u/") and url.endswith(">")
    scope = read_unsubscribe_token(S, urlsplit(url[1:-1]).path.rsplit("/", 1)[1])
    assert (scope.customer_id, scope.category, scope.channel) == ("c-1", "marketing", "email")


def test_message_links_for_templates() -> None:
    links = message_links(S, "c-1", "loyalty", "sms")
    assert links["preferences"].startswith("https://hub.example/p/")
    scope = read_unsubscribe_token(S, links["unsubscribe"].rsplit("/", 1)[1])
    assert (scope.category, scope.channel) == ("loyalty", "sms")
    assert len(links["preferences"]) < 80  # short enough for an SMS


def test_tokens_are_scoped_signed_and_expire() -> None:
    link = preference_link(S, "c-1")
    token = link.rsplit("/", 1)[1]
    assert read_preference_token(S, token) == PreferenceScope("c-1")
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert read_preference_token(S, flipped) is None
    other = Settings(database_url="sqlite://", secret_key="another-secret")
    assert read_preference_token(other, token) is None
    # a token of one kind is not accepted as the other
    assert read_preference_token(S, unsubscribe_token(S, "c-1", "marketing", "sms")) is None
    assert read_unsubscribe_token(S, token) is None
    expired = Settings(database_url="sqlite://", preference_link_days=1)
    old = URLSafeTimedSerializer(expired.secret_key.get_secret_value(),
                                 salt="hub.preference-center.v1", signer=_TwoDaysAgo)
    assert read_preference_token(expired, old.dumps("c-1")) is None


class _TwoDaysAgo(TimestampSigner):
    """Signs as if it were two days ago."""

    def get_timestamp(self) -> int:
        return int(time.time()) - 2 * 86_400


def _ledger(client: TestClient) -> list[tuple[str, str, str, str]]:
    history = client.get("/v1/customers/c-1/consents").json()["history"]
    return [(h["purpose"], h["channel"], h["action"], h["source"]) for h in history]


def test_one_click_unsubscribe_withdraws_with_no_interaction(client: TestClient,
                                                             runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    client.post("/v1/customers/c-1/consents", json={
        "purpose": "marketing", "channel": "email", "action": "granted", "source": "checkout"})
    url = unsubscribe_headers(runtime.settings, "c-1", "marketing")["List-Unsubscribe"][1:-1]
    path = urlsplit(url).path
    page = client.get(path)  # a GET (link scanner) changes nothing
    assert page.status_code == 200 and "Wypisz mnie" in page.text
    assert _ledger(client)[-1][2] == "granted"
    anonymous = TestClient(client.app)  # mail clients send no credentials or cookies
    reply = anonymous.post(path, data={"List-Unsubscribe": "One-Click"})
    assert reply.status_code == 200
    assert _ledger(client)[-1] == ("marketing", "email", "withdrawn", "unsubscribe_link")
    assert anonymous.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert len(_ledger(client)) == 2  # repeating it writes nothing new
    # the year-long unsubscribe link alone never grants consent back
    undo = anonymous.post(f"{path}/undo")
    assert undo.status_code == 200 and "Nic nie zmieniono" in undo.text
    assert _ledger(client)[-1][2] == "withdrawn" and len(_ledger(client)) == 2
    done = anonymous.post(path, data={"confirm": "1"}, params={"lang": "de"})
    assert "Rückgängig" not in done.text  # nothing changed, so nothing to undo
    assert anonymous.post("/u/forged-token", data={"List-Unsubscribe": "One-Click"}
                          ).status_code == 403


def test_transactional_unsubscribe_opts_out_of_the_channel(client: TestClient,
                                                           runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    path = urlsplit(unsubscribe_headers(runtime.settings, "c-1", "transactional")
                    ["List-Unsubscribe"][1:-1]).path
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    prefs = client.get("/v1/customers/c-1/preferences").json()
    assert prefs["channels"]["transactional"] == ["app_push", "sms", "push", "inbox"]
    assert _ledger(client) == []  # transactional notices rest on the contract, not consent


def test_sms_stop_withdraws_everything_on_sms(client: TestClient, runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    with runtime.db.transaction() as session:
        (customer_id,) = find_customers_by_phone(session, "default", "+48 512 345 678")
        assert stop_channel(session, customer_id, "sms") == ["marketing", "loyalty",
                                                             "transactional"]
        assert stop_channel(session, customer_id, "sms") == []
        assert not withdraw_consent(session, customer_id, "marketing", "sms", "sms_stop")
        assert find_customers_by_phone(session, "default", "not a number") == []
    assert {(p, a, s) for p, _, a, s in _ledger(client)} == {
        ("marketing", "withdrawn", "sms_stop"), ("loyalty", "withdrawn", "sms_stop")}
    assert "sms" not in client.get("/v1/customers/c-1/preferences").json()["channels"][
        "transactional"]


@pytest.mark.parametrize("lang", ["pl", "en", "uk", "de"])
def test_preference_center_speaks_each_language(client: TestClient, lang: str) -> None:
    client.put("/v1/customers/c-1", json={**ANNA, "locale": lang})
    page = client.get(client.post("/v1/customers/c-1/preference-link").json()["url"])
    assert f'<html lang="{lang}">' in page.text
    words = {"pl": "Zapisz", "en": "Save", "uk": "Зберегти", "de": "Speichern"}
    assert words[lang] in page.text
    assert page.headers["referrer-policy"] == "no-referrer"


def test_preference_form_without_javascript(client: TestClient) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    client.post("/v1/customers/c-1/consents", json={
        "purpose": "marketing", "channel": "sms", "action": "granted", "source": "checkout"})
    path = urlsplit(client.post("/v1/customers/c-1/preference-link").json()["url"]).path
    form = {"transactional": ["email", "sms"], "preferred_transactional": "email",
            "marketing": ["email"], "preferred_marketing": "email", "loyalty": [],
            "preferred_loyalty": "push", "frequency": "important", "quiet_start": "22:00",
            "quiet_end": "07:30", "locale": "uk", "tone": "informal"}
    reply = client.post(path, data=form, follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"].endswith("saved=1&lang=uk")
    prefs = client.get("/v1/customers/c-1/preferences").json()
    assert prefs["channels"]["transactional"] == ["email", "sms"]
    assert prefs["channels"]["loyalty"][0] == "push"
    assert (prefs["frequency"], prefs["locale"], prefs["tone"]) == ("important", "uk",
                                                                    "informal")
    assert prefs["quiet_hours"] == {"start": "22:00", "end": "07:30"}
    assert _ledger(client)[1:] == [("marketing", "sms", "withdrawn", "preference_center"),
                                   ("marketing", "email", "granted", "preference_center")]
    client.post(path, data=form)  # saving the same form again writes no new rows
    assert len(_ledger(client)) == 3
    texts = client.get("/v1/customers/c-1/consents").json()["history"]
    assert texts[-1]["text_version"] == "pc-2026-11"
    tampered = client.post(path[:-3] + "xyz", data=form)
    assert tampered.status_code == 403 and "Зберегти" not in tampered.text
    client.delete("/v1/customers/c-1")
    assert client.get(path).status_code == 410
