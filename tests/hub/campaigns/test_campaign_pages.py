"""The campaign pages' guards without a browser: scopes, CSRF and Origin, tenants, and a
refused form that stores nothing."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub.api.app import create_app
from hub.audience_models import Audience
from hub.keys import Scope, create_key
from hub.models import Campaign
from tests.helpers import make_runtime
from tests.hub.campaigns.builders import add_audience, add_customers, campaign_body

MARKETER = (Scope.TEMPLATES_READ, Scope.CAMPAIGNS_READ, Scope.CAMPAIGNS_WRITE,
            Scope.AUDIENCES_READ, Scope.AUDIENCES_WRITE)


@pytest.fixture
def runtime(tmp_path):
    rt = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    add_customers(rt.db, 5)
    yield rt
    rt.db.dispose()


def logged_in(runtime, *scopes: Scope, tenant: str = "default") -> tuple[TestClient, str]:
    key = create_key(runtime.db, f"team-{tenant}-{len(scopes)}", list(scopes), tenant=tenant)
    client = TestClient(create_app(runtime))
    assert client.post("/ui/login", data={"api_key": key}).status_code == 200
    page = client.get("/ui/templates")
    return client, re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)


def form(csrf: str, **over: str) -> dict[str, str]:
    return {"csrf": csrf, "name": "Test", "category": "marketing", "channels": "email",
            "audience_mode": "new", "audience_name": "all",
            "audience_filter": '{"field": "segment", "op": "eq", "value": "individual"}',
            "holdout_percent": "10", "schedule_kind": "now", "v0.name": "a", "v0.weight": "50",
            "v0.pl.email.subject": "S", "v0.pl.email.heading": "H",
            "v0.pl.email.body": "B", **over}


def counts(runtime) -> tuple[int, int]:
    with runtime.db.sessions() as session:
        return (session.scalar(select(func.count()).select_from(Campaign)),
                session.scalar(select(func.count()).select_from(Audience)))


def test_scopes_decide_what_a_key_sees(runtime):
    templates_only, _ = logged_in(runtime, Scope.TEMPLATES_READ)
    assert templates_only.get("/ui/campaigns").status_code == 403
    reader, csrf = logged_in(runtime, Scope.TEMPLATES_READ, Scope.CAMPAIGNS_READ)
    assert reader.get("/ui/campaigns").status_code == 200
    assert "new-campaign" not in reader.get("/ui/campaigns").text
    assert reader.get("/ui/campaigns/new").status_code == 403
    assert reader.post("/ui/campaigns/new", data=form(csrf)).status_code == 403
    assert counts(runtime) == (0, 0)


def test_a_campaign_from_the_form_and_its_actions(runtime):
    client, csrf = logged_in(runtime, *MARKETER)
    created = client.post("/ui/campaigns/new", data=form(csrf), follow_redirects=False)
    assert created.status_code == 303
    page = client.get(created.headers["location"])
    assert "szkic" in page.text and 'id="action-start"' in page.text
    campaign_id = int(created.headers["location"].split("/")[-1].split("?")[0])
    action = f"/ui/campaigns/{campaign_id}/action"
    assert client.post(action, data={"csrf": "0" * 64, "action": "start"}).status_code == 403
    assert client.post(action, data={"csrf": csrf, "action": "start"},
                       headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post(action, data={"csrf": csrf, "action": "resume"}).status_code == 409
    assert client.post(action, data={"csrf": csrf, "action": "start"}).status_code == 200
    assert "zaplanowana" in client.get(f"/ui/campaigns/{campaign_id}").text
    for step, state in (("pause", "wstrzymana"), ("resume", "zaplanowana"),
                        ("cancel", "anulowana")):
        assert client.post(action, data={"csrf": csrf, "action": step}).status_code == 200
        assert f'id="campaign-state">{state}<' in client.get(f"/ui/campaigns/{campaign_id}").text

    other, other_csrf = logged_in(runtime, *MARKETER, tenant="acme")
    assert other.get(f"/ui/campaigns/{campaign_id}").status_code == 404
    assert other.post(action, data={"csrf": other_csrf, "action": "pause"}).status_code == 404
    assert "Test" not in other.get("/ui/campaigns").text


@pytest.mark.parametrize("over, problem", [
    ({"audience_filter": '{"field": "nope", "op": "eq", "value": 1}'}, "unknown field"),
    ({"audience_filter": "{not json"}, "Expecting"),
    ({"v0.pl.email.subject": "{{ ''.__class__ }}"}, "sandbox"),
    ({"v0.pl.email.body": ""}, "pl.email.body: Field required"),
    ({"holdout_percent": "90"}, "holdout_percent"),
    ({"schedule_kind": "at", "schedule_at": "9999-12-31T10:00"}, "schedule.at"),
])
def test_a_refused_form_comes_back_and_stores_nothing(runtime, over, problem):
    client, csrf = logged_in(runtime, *MARKETER)
    reply = client.post("/ui/campaigns/new", data=form(csrf, **over), follow_redirects=False)
    assert reply.status_code == 422
    assert problem in reply.text
    assert counts(runtime) == (0, 0)


def test_live_count_and_preview_need_the_session_token(runtime):
    client, csrf = logged_in(runtime, *MARKETER)
    body = {"filter": {"field": "segment", "op": "eq", "value": "individual"}}
    assert client.post("/ui/campaigns/audience-count", json=body).status_code == 403
    live = client.post("/ui/campaigns/audience-count", json=body, headers={"X-CSRF": csrf})
    assert live.json()["matched"] == 5 and live.json()["reachable"]["email"] == 5
    bad = client.post("/ui/campaigns/audience-count", headers={"X-CSRF": csrf},
                      json={"filter": {"all": "x"}})
    assert "problem" in bad.json()
    fields = {k: v for k, v in form(csrf).items() if k not in ("csrf", "channels")}
    shown = client.post("/ui/campaigns/preview", headers={"X-CSRF": csrf},
                        json={"fields": fields, "channels": ["email"], "index": 0})
    assert shown.json()["previews"]["pl.email"]["parts"]["subject"] == "S"
    assert client.post("/ui/campaigns/preview", json={"fields": fields}).status_code == 403


def test_an_existing_audience_can_be_chosen(runtime):
    audience_id = add_audience(runtime.db)
    client, csrf = logged_in(runtime, *MARKETER)
    assert audience_id in client.get("/ui/campaigns/new").text
    created = client.post("/ui/campaigns/new", follow_redirects=False, data=form(
        csrf, audience_mode="existing", audience_id=audience_id))
    assert created.status_code == 303
    assert counts(runtime) == (1, 1)
    assert campaign_body(audience_id)["variants"]  # the builders' body is the API's shape
