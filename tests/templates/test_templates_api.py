"""The preview API: coverage, preview with warnings, test-send through the channel."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.events import event_types
from hub.keys import Scope
from tests.helpers import api_key, make_runtime, read_outbox


@pytest.fixture
def client(tmp_path):
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path,
                           test_recipients=["+48512345678"])
    app = create_app(runtime)
    with TestClient(app) as http:
        http.headers["Authorization"] = f"Bearer {api_key(runtime, Scope.TEMPLATES_READ)}"
        http.runtime = runtime
        http.tmp = tmp_path
        yield http


def test_scope_is_required(client):
    other = api_key(client.runtime, Scope.EVENTS_WRITE)
    reply = client.get("/v1/templates", headers={"Authorization": f"Bearer {other}"})
    assert reply.status_code == 403
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/templates", headers={"Authorization": ""}).status_code == 401


def test_coverage_matrix(client):
    body = client.get("/v1/templates").json()
    assert "parcel.ready_for_pickup" in body["event_types"] and "digest" in body["event_types"]
    cells = (len(event_types()) + 1) * 5 * 4 * 2  # every registered type and the digest
    assert len(body["coverage"]) == cells
    assert body["summary"] == {"present": cells, "fallback": 0, "missing": 0}
    cell = next(c for c in body["coverage"] if c["event_type"] == "parcel.delivered"
                and c["channel"] == "sms" and c["locale"] == "de" and c["tone"] == "informal")
    assert cell == {"event_type": "parcel.delivered", "channel": "sms", "locale": "de",
                    "tone": "informal", "status": "present",
                    "template": "catalog/parcel.delivered/de.j2"}


def test_preview_sms_reports_encoding_and_warnings(client):
    reply = client.post("/v1/templates/preview", json={
        "event_type": "parcel.ready_for_pickup", "channel": "sms", "locale": "uk",
        "tone": "informal"})
    body = reply.json()
    assert reply.status_code == 200 and body["ok"]
    assert body["parts"]["body"].startswith("Твоя посилка PL0001234567")
    assert body["sms"] == {"encoding": "ucs2", "segments": 2, "units": 128, "budget": 3,
                           "transliterated": False, "over_budget": False}
    assert [w["code"] for w in body["warnings"]] == ["sms_ucs2"]


def test_preview_with_given_data_and_over_budget(client):
    reply = client.post("/v1/templates/preview", json={
        "event_type": "marketing.campaign", "channel": "sms", "locale": "uk",
        "data": {"title": "Акція", "body": "Дуже довгий текст акції. " * 12}})
    body = reply.json()
    assert body["ok"] and body["sms"]["over_budget"]
    assert {"sms_ucs2", "sms_over_budget"} <= {w["code"] for w in body["warnings"]}


def test_preview_missing_variable_is_a_warning_not_a_blank(client):
    reply = client.post("/v1/templates/preview", json={
        "event_type": "loyalty.points_earned", "channel": "sms", "locale": "pl", "data": {}})
    body = reply.json()
    assert reply.status_code == 200 and body["ok"] is False and body["parts"] == {}
    assert body["warnings"][0]["code"] == "undefined_variable"
    assert "points" in body["warnings"][0]["message"]


def test_preview_email_reports_html_size(client):
    body = client.post("/v1/templates/preview", json={
        "event_type": "parcel.customs_payment_required", "channel": "email", "locale": "de",
        "tone": "formal", "segment": "business"}).json()
    assert body["ok"] and 3000 < body["html_bytes"] < 102_000
    assert "Sehr geehrte Damen und Herren," in body["parts"]["text"]
    assert "Umsatzsteuer" in body["parts"]["text"]


def test_unknown_event_type_is_422(client):
    reply = client.post("/v1/templates/preview", json={"event_type": "parcel.teleported",
                                                       "channel": "sms"})
    assert reply.status_code == 422


def test_test_send_goes_through_the_configured_transport(client):
    body = {"event_type": "parcel.out_for_delivery", "channel": "sms", "locale": "pl",
            "tone": "informal", "to": "+48512345678"}
    assert client.post("/v1/templates/test-send", json=body).status_code == 403  # read only
    sender = {"Authorization": f"Bearer {api_key(client.runtime, Scope.TEMPLATES_SEND)}"}
    reply = client.post("/v1/templates/test-send", json=body, headers=sender)
    body = reply.json()
    assert reply.status_code == 200 and body["sent"], body
    assert body["provider_message_id"].startswith("console:test-send:")
    (sent,) = read_outbox(client.tmp / "outbox.jsonl")
    assert sent["to"] == "+48512345678" and sent["parts"] == body["preview"]["parts"]


def test_test_send_validates_the_address(client):
    sender = {"Authorization": f"Bearer {api_key(client.runtime, Scope.TEMPLATES_SEND)}"}
    reply = client.post("/v1/templates/test-send", json={
        "event_type": "parcel.delivered", "channel": "email", "to": "not-an-address"},
        headers=sender)
    assert reply.status_code == 422


def test_page_highlights_missing_and_fallback_cells(client, tmp_path):
    from hub.pipeline import Pipeline, Stages
    from templates import Renderer

    folder = tmp_path / "partial" / "parcel.delivered"
    folder.mkdir(parents=True)
    (folder / "pl.formal.j2").write_text("{% block sms %}Doręczona{% endblock %}", "utf-8")
    runtime = client.runtime
    stages = runtime.pipeline.stages
    runtime.pipeline = Pipeline(runtime.db, Stages(stages.limiter, Renderer(tmp_path / "partial"),
                                                   stages.transports))
    body = client.get("/v1/templates").json()
    cells = (len(event_types()) + 1) * 5 * 4 * 2
    assert body["summary"] == {"present": 1, "fallback": 7, "missing": cells - 8}
    login = client.post("/ui/login", data={"api_key": client.headers["Authorization"][7:]},
                        follow_redirects=False)
    assert login.status_code == 303 and "httponly" in login.headers["set-cookie"].lower()
    page = client.get("/ui/templates?event_type=parcel.delivered&channel=sms&locale=uk")
    assert page.status_code == 200
    assert page.text.count('class="cell missing"') == cells - 8 + 1  # + the legend
    assert page.text.count('class="cell fallback"') == 7 + 1
    assert "fallback_used" in page.text and "locale uk→pl" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_page_requires_login(client):
    reply = client.get("/ui/templates", follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"] == "/ui/login"
    client.cookies.set("hub_ui_templates", "forged", path="/ui")
    assert client.get("/ui/templates", follow_redirects=False).status_code == 303
