"""The editor page's guards without a browser: scopes decide the buttons and the posts,
CSRF and Origin are checked, tenants see only their own versions."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.keys import Scope, create_key
from tests.helpers import make_runtime

EDITOR = "/ui/templates/editor?template=parcel.delivered:en"
SOURCE = ("{% block sms %}Delivered: {{ parcel.tracking_number }}{% endblock %}"
          "{% block push_title %}Delivered{% endblock %}{% block push_body %}Enjoy{% endblock %}"
          "{% block subject %}Delivered{% endblock %}{% block heading %}Delivered{% endblock %}"
          "{% block body %}Your parcel {{ parcel.tracking_number }} arrived.{% endblock %}")


@pytest.fixture
def runtime(tmp_path):
    rt = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    yield rt
    rt.db.dispose()


def logged_in(runtime, *scopes: Scope, tenant: str = "default") -> tuple[TestClient, str]:
    """A browser-like client after login, and the CSRF value of its session's forms."""
    key = create_key(runtime.db, f"team-{tenant}-{len(scopes)}", list(scopes), tenant=tenant)
    client = TestClient(create_app(runtime))
    assert client.post("/ui/login", data={"api_key": key}).status_code == 200
    page = client.get(EDITOR)
    return client, re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)


def save(client, csrf: str, **extra: str):
    return client.post("/ui/templates/editor/save", follow_redirects=False, data={
        "template": "parcel.delivered:en", "source": SOURCE, "csrf": csrf, **extra})


def test_scopes_decide_buttons_and_posts(runtime):
    reader, csrf = logged_in(runtime, Scope.TEMPLATES_READ)
    page = reader.get(EDITOR).text
    assert 'id="save" disabled' in page and "templates:write" in page
    assert save(reader, csrf).status_code == 403

    writer, csrf = logged_in(runtime, Scope.TEMPLATES_READ, Scope.TEMPLATES_WRITE)
    assert save(writer, csrf).status_code == 303
    page = writer.get(EDITOR).text
    assert "Delivered: {{ parcel.tracking_number }}" in page  # the latest draft is loaded
    assert "templates:publish" in page and "/ui/templates/editor/publish" not in page
    publish = writer.post("/ui/templates/editor/publish", follow_redirects=False, data={
        "template": "parcel.delivered:en", "number": "1", "csrf": csrf})
    assert publish.status_code == 403


def test_csrf_origin_and_live_preview_guards(runtime):
    client, csrf = logged_in(runtime, Scope.TEMPLATES_READ, Scope.TEMPLATES_WRITE)
    assert save(client, "0" * 64).status_code == 403
    assert client.post("/ui/templates/editor/save", data={
        "template": "parcel.delivered:en", "source": SOURCE, "csrf": csrf},
        headers={"Origin": "https://evil.example"}).status_code == 403
    body = {"template": "parcel.delivered:en", "source": SOURCE}
    assert client.post("/ui/templates/editor/preview", json=body).status_code == 403
    live = client.post("/ui/templates/editor/preview", json=body, headers={"X-CSRF": csrf})
    assert live.status_code == 200
    assert live.json()["previews"]["sms.formal"]["parts"]["body"] == "Delivered: PL0001234567"
    refused = client.post("/ui/templates/editor/preview", headers={"X-CSRF": csrf},
                          json={**body, "source": "{{ fmt.__init__ }}"})
    assert "'_'" in refused.json()["problem"]
    assert client.post("/ui/templates/editor/preview", headers={"X-CSRF": csrf},
                       json={"template": "nope:xx", "source": ""}).status_code == 404


def test_tenants_see_only_their_versions(runtime):
    ours, csrf = logged_in(runtime, Scope.TEMPLATES_READ, Scope.TEMPLATES_WRITE)
    assert save(ours, csrf, note="ours").status_code == 303
    theirs, _ = logged_in(runtime, Scope.TEMPLATES_READ, tenant="acme")
    page = theirs.get(EDITOR).text
    assert "„ours”" not in page and 'id="versions"' not in page
    assert "Delivered: {{" not in page  # they edit the catalog file, not our draft
