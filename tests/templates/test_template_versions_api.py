"""Template drafts and versions over the API: hostile input first, then save, publish
(used by the next message in another process), rollback and return to the catalog."""

from __future__ import annotations

import re
from functools import partial

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.api.app import create_app
from hub.events import EventIn
from hub.intake import accept
from hub.keys import Scope, create_key
from hub.models import Decision
from hub.worker import Worker
from templates.catalog import CATALOG_DIR
from tests.helpers import api_key, event, make_runtime, read_outbox

TEMPLATE = "parcel.ready_for_pickup:pl"
URL = f"/v1/templates/{TEMPLATE}"
CATALOG = (CATALOG_DIR / "parcel.ready_for_pickup" / "pl.j2").read_text("utf-8")


def with_sms(text: str) -> str:
    """The catalog file with its SMS block replaced (every other channel kept)."""
    return re.sub(r"\{% block sms %\}.*?\{% endblock %\}",
                  "{% block sms %}" + text + "{% endblock %}", CATALOG, count=1, flags=re.S)


def _client(database_url, tmp_path):
    runtime = make_runtime(database_url, tmp_path)
    with TestClient(create_app(runtime)) as http:
        http.headers["Authorization"] = "Bearer " + api_key(
            runtime, Scope.TEMPLATES_READ, Scope.TEMPLATES_WRITE, Scope.TEMPLATES_PUBLISH)
        http.runtime = runtime
        http.tmp = tmp_path
        yield http
    runtime.db.dispose()


@pytest.fixture
def client(tmp_path):
    yield from _client(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)


@pytest.fixture
def both_stores(database_url, tmp_path):
    """The partial unique index and the generation counter matter on PostgreSQL too."""
    yield from _client(database_url, tmp_path)


def _problem(reply, status: int, slug: str) -> dict:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    assert body["type"].endswith("/" + slug)
    return body


@pytest.mark.parametrize("source, code", [
    ("{% block sms %}{{ ''.__class__ }}{% endblock %}", "sandbox"),
    ("{% block sms %}{{ parcel|attr('__class__') }}{% endblock %}", "sandbox"),
    ("{% block sms %}{{ customer['_sa_instance_state'] }}{% endblock %}", "sandbox"),
    ("{% block sms %}{% include 'layout/email.html.j2' %}{% endblock %}", "sandbox"),
    # what would take a worker's memory: refused statically or by the sample render
    ("{% block sms %}{{ 'x' * 10**9 }}{% endblock %}", "sandbox"),
    ("{% block sms %}{{ 2 ** 99999999 }}{% endblock %}", "sandbox"),
    ("{% block sms %}{{ '%0999999d' % 1 }}{% endblock %}", "sandbox"),
    ("{% block sms %}{{ parcel.tracking_number|center(10**9) }}{% endblock %}", "sandbox"),
    ("{% block sms %}{{ '%s'|format(parcel) }}{% endblock %}", "sandbox"),
    ("{% block sms %}{{ parcel.tracking_number }{% endblock %}", "syntax"),
    ("{% block sms %}{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}{% endblock %}", "syntax"),
    ("{% block sns %}typo{% endblock %}", "unknown_block"),
])
def test_hostile_sources_are_refused_at_save(client, source, code):
    body = _problem(client.post(f"{URL}/drafts", json={"source": source}), 422,
                    "template-invalid")
    assert body["problems"][0]["code"] == code
    assert client.get(f"{URL}/versions").json()["versions"] == []  # nothing half-written


def test_hostile_requests(client):
    # another tenant's template ids look like unknown ones; unknown ids are 404
    other = create_key(client.runtime.db, "acme-marketing", [Scope.ADMIN], tenant="acme")
    draft = client.post(f"{URL}/drafts", json={"source": with_sms("Hej")}).json()
    theirs = {"Authorization": f"Bearer {other}"}
    assert client.get(f"{URL}/versions", headers=theirs).json()["versions"] == []
    _problem(client.post(f"{URL}/versions/{draft['number']}/publish", headers=theirs), 404,
             "not-found")
    for bad in ("parcel.ready_for_pickup:xx", "nope.nope:pl", "parcel.ready_for_pickup"):
        _problem(client.get(f"/v1/templates/{bad}/versions"), 404, "not-found")
    _problem(client.post(f"{URL}/versions/99999999999/publish"), 422, "validation")
    _problem(client.post(f"{URL}/versions/77/publish"), 404, "not-found")
    _problem(client.post(f"{URL}/drafts", json={"source": "x", "tenant": "acme"}), 422,
             "validation")
    _problem(client.post(f"{URL}/drafts", json={"source": "x" * 70_000}), 422, "validation")
    huge = client.post(f"{URL}/drafts", json={"source": "x" * 2_000_000})
    assert huge.status_code == 413
    assert huge.headers["content-type"].startswith("application/problem+json")
    # not UTF-8, and a lone surrogate (valid JSON that no UTF-8 store can hold)
    for raw in (b'{"source": "\xff\xfe"}', b'{"source": "\\ud800"}'):
        reply = client.post(f"{URL}/drafts", content=raw,
                            headers={"Content-Type": "application/json"})
        assert reply.status_code in (400, 422)
        assert reply.headers["content-type"].startswith("application/problem+json")
    reader = {"Authorization": f"Bearer {api_key(client.runtime, Scope.TEMPLATES_READ)}"}
    assert client.post(f"{URL}/drafts", json={"source": "x"}, headers=reader).json()[
        "required_scope"] == "templates:write"
    writer = {"Authorization": f"Bearer {api_key(client.runtime, Scope.TEMPLATES_WRITE)}"}
    assert client.post(f"{URL}/versions/1/publish", headers=writer).json()[
        "required_scope"] == "templates:publish"


def _send(runtime, worker, tmp_path, event_id: str) -> str:
    """Posts an event and drains it with `worker`, a long-lived runtime of its own (another
    process's renderer, which must notice each publish); the SMS the console channel wrote."""
    accept(runtime.db, "test-carrier", [EventIn.model_validate(event(event_id))])
    Worker(worker.db, worker.pipeline, worker.settings).drain(timeout=10)
    sms = [m for m in read_outbox(tmp_path / "outbox.jsonl") if m["channel"] == "sms"]
    return str(sms[-1]["parts"]["body"])  # the newest


def test_publish_rollback_and_revert_change_the_next_message(both_stores):
    client = both_stores
    runtime, tmp = client.runtime, client.tmp
    worker = make_runtime(runtime.settings.database_url, tmp)  # "another process"
    send = partial(_send, runtime, worker, tmp)
    assert "czeka na odbior" in send("evt-file")  # the catalog file

    v1 = client.post(f"{URL}/drafts", json={"source": with_sms(
        "Paczka {{ parcel.tracking_number }} czeka, wersja pierwsza."), "note": "krócej"})
    assert v1.status_code == 201 and v1.json()["state"] == "draft"
    assert "(api, key " in v1.json()["author"]
    assert client.post(f"{URL}/versions/1/publish").json()["state"] == "published"
    assert send("evt-v1") == "Paczka PL0001234567 czeka, wersja pierwsza."
    with runtime.db.sessions() as session:  # the decision log names the version sent
        detail = session.scalars(select(Decision.detail).where(Decision.channel == "sms")
                                 .order_by(Decision.id.desc())).first()
    assert detail is not None and detail.endswith(f"; draft:{TEMPLATE}@v1")

    # a draft whose preview warns (undefined variable) needs confirmation
    client.post(f"{URL}/drafts", json={"source": with_sms("Druga {{ parcel.nope }}")})
    body = _problem(client.post(f"{URL}/versions/2/publish"), 409, "confirmation-required")
    assert {w["code"] for w in body["warnings"]} == {"undefined_variable"}
    client.post(f"{URL}/drafts", json={"source": with_sms("Paczka {{ parcel.tracking_number }}"
                                                          ", wersja trzecia.")})
    assert client.post(f"{URL}/versions/3/publish", json={"confirm": True}).status_code == 200
    assert send("evt-v3") == "Paczka PL0001234567, wersja trzecia."

    # rollback to v1 adds v4 with v1's source; v3 is archived; publishing v1 again is refused
    _problem(client.post(f"{URL}/versions/1/publish"), 409, "version-conflict")
    v4 = client.post(f"{URL}/versions/1/rollback").json()
    assert (v4["number"], v4["state"], v4["restored_from"]) == (4, "published", 1)
    assert send("evt-v4") == "Paczka PL0001234567 czeka, wersja pierwsza."
    history = client.get(f"{URL}/versions").json()
    assert history["published"] == 4
    assert [(v["number"], v["state"]) for v in history["versions"]] == [
        (4, "published"), (3, "archived"), (2, "draft"), (1, "archived")]
    assert history["versions"][1]["archived_by"] is not None

    assert client.post(f"{URL}/unpublish").status_code == 204
    assert "czeka na odbior" in send("evt-back")
    _problem(client.post(f"{URL}/unpublish"), 409, "not-published")
    worker.db.dispose()


def test_publish_refuses_a_draft_that_drops_a_channel(client):
    client.post(f"{URL}/drafts", json={"source": "{% block sms %}Tylko SMS{% endblock %}"})
    body = _problem(client.post(f"{URL}/versions/1/publish", json={"confirm": True}), 422,
                    "publish-refused")
    assert "email" in body["detail"] and "push" in body["detail"]


def test_draft_preview_covers_every_channel_and_tone(client):
    source = with_sms("{% if formal %}Pani paczka{% else %}Twoja paczka{% endif %} "
                      "{{ parcel.tracking_number }} — już jest 😀")
    reply = client.post(f"{URL}/drafts/preview", json={"source": source})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["channels"] == ["sms", "email", "push", "app_push", "inbox"]
    cells = {(c["channel"], c["tone"]): c["preview"] for c in body["previews"]}
    assert len(cells) == 10
    assert cells[("sms", "informal")]["parts"]["body"].startswith("Twoja paczka PL0001234567")
    assert cells[("sms", "formal")]["template"] == "draft"
    assert "sms_ucs2" in {w["code"] for w in cells[("sms", "formal")]["warnings"]}
