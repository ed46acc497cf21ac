"""Tenants (issue 11, item 1): two carriers using the same customer id stay fully separate;
every customer route answers 404 across tenants; keys are listed and revoked at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from hub.api.app import create_app
from hub.cli import app as cli
from hub.customers import get_customer
from hub.keys import Scope, create_key, list_keys, revoke_key
from hub.links import read_preference_token
from hub.models import ConsentRecord
from hub.runtime import HubRuntime
from hub.settings import get_settings
from hub.worker import Worker
from tests.helpers import event

SUB = {"endpoint": "https://fcm.googleapis.com/fcm/send/a-device",
       "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVl",
                "auth": "tBHItJI5svbpez7K"}}
CONSENT = {"purpose": "marketing", "channel": "sms", "action": "granted", "source": "checkout"}


def _client(runtime: HubRuntime, tenant: str, producer: str) -> TestClient:
    http = TestClient(create_app(runtime))
    http.headers["Authorization"] = (
        f"Bearer {create_key(runtime.db, producer, [Scope.ADMIN], tenant=tenant)}")
    return http


def test_same_customer_id_in_two_tenants_is_two_profiles(runtime: HubRuntime) -> None:
    a, b = _client(runtime, "acme", "acme-parcels"), _client(runtime, "bravo", "bravo-parcels")
    assert a.put("/v1/customers/c-1001", json={"name": "Anna", "phone": "+48512345678",
                                               "phone_verified": True}).status_code == 201
    a.post("/v1/customers/c-1001/push-subscriptions", json=SUB)
    a.post("/v1/customers/c-1001/consents", json=CONSENT)
    routes = [("GET", "", None), ("GET", "/export", None), ("GET", "/preferences", None),
              ("PUT", "/preferences", {"frequency": "all"}), ("GET", "/consents", None),
              ("POST", "/consents", CONSENT), ("POST", "/push-subscriptions", SUB),
              ("DELETE", "/push-subscriptions", {"endpoint": SUB["endpoint"]}),
              ("POST", "/preference-link", None), ("DELETE", "", None)]
    for method, suffix, body in routes:
        reply = b.request(method, f"/v1/customers/c-1001{suffix}", json=body)
        assert reply.status_code == 404, (method, suffix, reply.text)
    # B's events about "its" c-1001 create B's own profile and never touch A's.
    b.post("/v1/events", json=event("e-1", customer={"id": "c-1001", "name": "Bogdan",
                                                     "phone": "+48601234567"}))
    Worker(runtime.db, runtime.pipeline, runtime.settings).drain()
    mine = a.get("/v1/customers/c-1001").json()
    assert (mine["name"], mine["phone"], mine["phone_verified"]) == ("Anna", "+48512345678",
                                                                     True)
    assert len(mine["push_subscriptions"]) == 1
    assert a.get("/v1/customers/c-1001/export").json()["events"] == []
    theirs = b.get("/v1/customers/c-1001").json()
    assert (theirs["name"], theirs["phone"]) == ("Bogdan", "+48601234567")
    # B's erasure of its own c-1001 leaves A's untouched, and A's ledger is A's only.
    assert b.delete("/v1/customers/c-1001").status_code == 204
    assert a.get("/v1/customers/c-1001").status_code == 200
    assert b.get("/v1/customers/c-1001").status_code == 410
    with runtime.db.sessions() as session:
        tenants = set(session.scalars(select(ConsentRecord.tenant)))
        assert tenants == {"acme"}
        assert get_customer(session, "bravo", "c-1001") is None
        assert get_customer(session, "acme", "c-1001") is not None


def test_producers_of_one_tenant_share_customers(runtime: HubRuntime) -> None:
    parcels, loyalty = _client(runtime, "acme", "parcels"), _client(runtime, "acme", "loyalty")
    parcels.put("/v1/customers/c-7", json={"name": "Ewa"})
    assert loyalty.get("/v1/customers/c-7").json()["name"] == "Ewa"
    # idempotency stays per producer: the same event id from the other producer is new
    assert parcels.post("/v1/events", json=event("e-1", customer={"id": "c-7"})
                        ).status_code == 202
    assert loyalty.post("/v1/events", json=event("e-1", customer={"id": "c-7"})
                        ).status_code == 202
    with pytest.raises(ValueError, match="another tenant"):
        create_key(runtime.db, "parcels", [Scope.EVENTS_WRITE], tenant="bravo")


def test_revoked_key_fails_on_the_next_request(runtime: HubRuntime) -> None:
    client = _client(runtime, "default", "p")
    assert client.get("/v1/templates").status_code == 200
    (key,) = list_keys(runtime.db)
    assert revoke_key(runtime.db, key.key_id)
    assert client.get("/v1/templates").status_code == 401
    assert not revoke_key(runtime.db, key.key_id)


def test_keys_cli_create_list_revoke(database_url: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_CONSOLE_OUTBOX_PATH", str(tmp_path / "outbox.jsonl"))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        made = runner.invoke(cli, ["keys", "create", "--tenant", "acme", "--producer", "p1",
                                   "--scope", "events:write"])
        assert made.exit_code == 0, made.output
        key_id = made.output.strip().split("_")[1]
        plain = runner.invoke(cli, ["keys", "create", "--producer", "p2", "--scope", "admin"])
        assert plain.exit_code == 0
        listed = runner.invoke(cli, ["keys", "list"]).output.splitlines()
        assert any(line.startswith(f"{key_id}\tacme\tp1\tevents:write") for line in listed)
        assert any("\tdefault\tp2\tadmin" in line for line in listed)
        assert runner.invoke(cli, ["keys", "revoke", key_id]).exit_code == 0
        assert runner.invoke(cli, ["keys", "revoke", key_id]).exit_code == 1
        assert "revoked" in next(x for x in runner.invoke(cli, ["keys", "list"]).output
                                 .splitlines() if x.startswith(key_id))
        taken = runner.invoke(cli, ["keys", "create", "--tenant", "bravo", "--producer", "p1",
                                    "--scope", "admin"])
        assert taken.exit_code != 0 and "another tenant" in taken.output
    finally:
        get_settings.cache_clear()


def test_preference_link_carries_the_tenant(runtime: HubRuntime) -> None:
    a, b = _client(runtime, "acme", "pa"), _client(runtime, "bravo", "pb")
    a.put("/v1/customers/c-1", json={"name": "Anna", "locale": "pl"})
    b.put("/v1/customers/c-1", json={"name": "Bob", "locale": "en"})
    url = b.post("/v1/customers/c-1/preference-link").json()["url"]
    page = b.get(url.removeprefix("http://testserver"))
    assert page.status_code == 200 and 'lang="en"' in page.text
    form = {"transactional": ["email"], "preferred_transactional": "email",
            "frequency": "important", "locale": "en", "tone": "formal"}
    assert b.post(url.removeprefix("http://testserver"), data=form,
                  follow_redirects=False).status_code == 303
    assert b.get("/v1/customers/c-1/preferences").json()["frequency"] == "important"
    assert a.get("/v1/customers/c-1/preferences").json()["frequency"] == "all"


def test_links_in_a_tenants_messages_carry_the_tenant(runtime: HubRuntime) -> None:
    acme = _client(runtime, "acme", "pa")
    acme.put("/v1/customers/c-1", json={"email": "ewa@example.pl", "email_verified": True})
    acme.post("/v1/events", json=event("e-1", customer={"id": "c-1"}))
    Worker(runtime.db, runtime.pipeline, runtime.settings).drain()
    outbox = Path(runtime.settings.console_outbox_path).read_text()
    (token,) = set(re.findall(r"/p/([\w.-]+)", outbox))
    scope = read_preference_token(runtime.settings, token)
    assert scope is not None and (scope.tenant, scope.customer_id) == ("acme", "c-1")
