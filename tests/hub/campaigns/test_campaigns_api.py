"""The campaigns API: hostile input first (other tenants, huge numbers, year 9999, unknown
fields, copy that would not render), then the state machine and its 409s."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.keys import Scope, create_key
from hub.runtime import HubRuntime
from tests.helpers import api_key
from tests.hub.campaigns.builders import add_audience, add_customers, campaign_body

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def audience_id(runtime: HubRuntime) -> str:
    add_customers(runtime.db, 20)
    return add_audience(runtime.db)


@pytest.fixture
def other_tenant(runtime: HubRuntime) -> Iterator[TestClient]:
    """A client of tenant `acme` with its own campaign key."""
    with TestClient(create_app(runtime)) as c:
        token = create_key(runtime.db, "acme-app", [Scope.CAMPAIGNS_WRITE, Scope.CAMPAIGNS_READ],
                           tenant="acme")
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def _create(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    reply = client.post("/v1/campaigns", json=body)
    assert reply.status_code == 201, reply.text
    created: dict[str, Any] = reply.json()
    return created


@pytest.mark.parametrize("change, path", [
    ({"category": "transactional"}, "category"),
    ({"holdout_percent": 51}, "holdout_percent"),
    ({"send_rate": 10**12}, "send_rate"),
    ({"schedule": {"kind": "at", "at": "9999-01-01T10:00:00+01:00"}}, "schedule"),
    ({"schedule": {"kind": "at"}}, "schedule"),
    ({"schedule": {"kind": "local_time", "local_time": "25:00"}}, "schedule"),
    ({"owner": "me"}, "owner"),
    ({"channels": ["email", "email"]}, ""),
    ({"channels": ["sms"]}, ""),  # the variants carry no SMS copy
])
def test_bad_campaigns_are_refused_naming_the_field(
        client: TestClient, audience_id: str, change: dict[str, Any], path: str) -> None:
    reply = client.post("/v1/campaigns", json=campaign_body(audience_id, **change))
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/problem+json"
    assert any(path in e["path"] for e in reply.json()["errors"])
    assert client.get("/v1/campaigns").json()["items"] == []  # nothing half-written


def test_copy_that_would_not_render_is_refused(client: TestClient, audience_id: str) -> None:
    body = campaign_body(audience_id)
    body["variants"][1]["templates"]["pl"]["email"]["body"] = "Cześć {{ customer.nickname }}"
    reply = client.post("/v1/campaigns", json=body)
    assert reply.status_code == 422 and reply.json()["type"].endswith("template-error")
    assert reply.json()["errors"][0]["path"] == "variants.b.templates.pl.email"
    body = campaign_body(audience_id)
    body["variants"][0]["templates"]["pl"]["email"]["subject"] = "{% endblock %}{% block x %}"
    assert client.post("/v1/campaigns", json=body).status_code == 422
    body = campaign_body(audience_id)
    body["variants"][0]["templates"]["pl"]["email"]["body"] = "{{ ''.__class__.__mro__ }}"
    assert client.post("/v1/campaigns", json=body).status_code == 422  # the sandbox holds


def test_sms_copy_reports_segments_and_encoding(client: TestClient, audience_id: str) -> None:
    body = campaign_body(audience_id, channels=["sms"])
    for variant in body["variants"]:
        variant["templates"]["pl"]["sms"] = {"text": "Zażółć gęślą jaźń " * 8}
    warnings = _create(client, body)["warnings"]
    codes = {w["code"] for w in warnings}
    assert {"sms_over_budget"} <= codes or {"sms_transliterated"} <= codes


def test_tenants_never_see_each_others_campaigns_or_audiences(
        client: TestClient, other_tenant: TestClient, audience_id: str) -> None:
    created = _create(client, campaign_body(audience_id))
    assert created["state"] == "draft" and created["progress"]["audience_size"] == 20
    reply = other_tenant.post("/v1/campaigns", json=campaign_body(audience_id))
    assert reply.status_code == 422 and reply.json()["errors"][0]["path"] == "audience_id"
    for path in (f"/v1/campaigns/{created['id']}", f"/v1/campaigns/{created['id']}/report"):
        assert other_tenant.get(path).status_code == 404
    assert other_tenant.post(f"/v1/campaigns/{created['id']}/start").status_code == 404
    assert other_tenant.get("/v1/campaigns").json()["items"] == []
    assert client.get("/v1/campaigns/99999999999").status_code == 422
    assert client.get("/v1/campaigns/424242").status_code == 404


def test_scopes(runtime: HubRuntime, client: TestClient, audience_id: str) -> None:
    client.headers["Authorization"] = f"Bearer {api_key(runtime, Scope.CAMPAIGNS_READ)}"
    assert client.post("/v1/campaigns", json=campaign_body(audience_id)).status_code == 403
    assert client.get("/v1/campaigns").status_code == 200
    client.headers["Authorization"] = f"Bearer {api_key(runtime, Scope.EVENTS_WRITE)}"
    assert client.get("/v1/campaigns").status_code == 403


def test_state_machine_and_its_conflicts(client: TestClient, audience_id: str) -> None:
    created = _create(client, campaign_body(
        audience_id, schedule={"kind": "local_time", "local_time": "10:00"}))
    base = f"/v1/campaigns/{created['id']}"
    reply = client.post(f"{base}/pause")
    assert reply.status_code == 409 and reply.json()["allowed_actions"] == ["start", "cancel"]
    assert client.post(f"{base}/start").json()["state"] == "scheduled"
    assert client.post(f"{base}/start").status_code == 409
    assert client.post(f"{base}/pause").json()["state"] == "paused"
    assert client.post(f"{base}/resume").json()["state"] == "scheduled"
    assert client.post(f"{base}/cancel").json()["state"] == "cancelled"
    for action in ("start", "pause", "resume", "cancel"):
        reply = client.post(f"{base}/{action}")
        assert reply.status_code == 409 and reply.json()["state"] == "cancelled"
    listed = client.get("/v1/campaigns").json()["items"]
    assert [c["id"] for c in listed] == [created["id"]]

