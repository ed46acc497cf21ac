"""Delivery feedback (issue 15 item 3): one-tap rating links signed per request, single use,
an optional comment, NPS statistics, opt-out, erasure and export."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from hub.api.app import create_app
from hub.feedback import make_token
from hub.keys import Scope, create_key
from hub.models import Decision, Event, FeedbackResponse
from hub.runtime import HubRuntime
from tests.helpers import event, read_outbox

RATE = re.compile(r"^(\d+): (http://testserver/f/\S+)$", re.M)


def _request(event_id: str, customer: str = "c-1", *, point: str = "WAW123M",
             carrier: str = "demo-carrier", phone_only: bool = False) -> dict[str, Any]:
    body = event(event_id, "parcel.feedback_request")
    body["customer"] = ({"id": customer, "phone": "+48512345678", "locale": "pl"} if phone_only
                        else {"id": customer, "email": f"{customer}@example.pl", "locale": "en"})
    body["parcel"]["pickup_point"]["id"] = point
    body["parcel"]["carrier"] = carrier
    return body


def _links(runtime: HubRuntime, event_id: str) -> dict[int, str]:
    """Score -> one-tap path, read from the e-mail the console channel wrote."""
    for message in read_outbox(Path(runtime.settings.console_outbox_path)):
        text = (message.get("parts") or {}).get("text") or ""
        if message.get("channel") == "email" and event_id in str(message) or text:
            found = {int(s): url.removeprefix("http://testserver") for s, url in RATE.findall(text)}
            if found:
                return found
    raise AssertionError("no rating links in the outbox")


def _rows(runtime: HubRuntime) -> list[FeedbackResponse]:
    with runtime.db.sessions() as session:
        return list(session.scalars(select(FeedbackResponse).order_by(FeedbackResponse.id)))


def _send(client: TestClient, drain: Callable[[], None], body: dict[str, Any]) -> None:
    assert client.post("/v1/events", json=body).status_code == 202
    drain()


def test_link_used_twice_records_one_score(client: TestClient, runtime: HubRuntime,
                                           drain: Callable[[], None]) -> None:
    _send(client, drain, _request("fb-1"))
    links = _links(runtime, "fb-1")
    assert sorted(links) == list(range(11))  # eleven one-tap links in the e-mail
    (mail,) = read_outbox(Path(runtime.settings.console_outbox_path))
    assert "http://testserver/u/" in mail["parts"]["text"]  # opt-out in one click
    first = client.get(links[8])
    assert first.status_code == 200 and "Thank you for your rating" in first.text
    again = client.get(links[8])
    other = client.get(links[3])
    assert "already recorded" in again.text and "already recorded" in other.text
    rows = _rows(runtime)
    assert [(r.score, r.channel, r.pickup_point, r.carrier) for r in rows] == [
        (8, "email", "WAW123M", "demo-carrier")]
    assert rows[0].customer_key and rows[0].customer_key.startswith("ck")  # no id in clear


def test_forged_or_altered_tokens_are_refused_and_write_nothing(
        client: TestClient, runtime: HubRuntime, drain: Callable[[], None]) -> None:
    _send(client, drain, _request("fb-2"))
    path = _links(runtime, "fb-2")[9]
    token = path.rsplit("/", 1)[1]
    pk, middle, mac = token.split(".")
    forged = [
        f"{pk}.{middle}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",  # signature altered
        f"{pk}.{middle.replace('e9', 'ea', 1)}.{mac}",  # score 9 -> 10, same signature
        f"{int(pk, 36) + 1:x}.{middle}.{mac}",  # another event
        f"{pk}.{middle.replace('e', 's', 1)}.{mac}",  # another channel
        "not-a-token", "",
    ]
    with runtime.db.sessions() as session:  # signed with another secret: refused too
        ev = session.scalar(select(Event).where(Event.event_id == "fb-2"))
        settings = runtime.settings.model_copy(update={"secret_key": SecretStr("another-secret")})
        forged.append(make_token(settings, ev.tenant, ev.customer_id, ev.id, "email", 9))
    for bad in forged:
        reply = client.get(f"/f/{bad}")
        assert reply.status_code in (403, 404), (bad, reply.status_code)
        if reply.status_code == 403:
            assert "not valid" in reply.text or "nieprawidłowy" in reply.text
    assert _rows(runtime) == []
    assert client.get(path).status_code == 200 and len(_rows(runtime)) == 1


def test_a_token_of_one_customer_does_not_fit_another_customers_request(
        client: TestClient, runtime: HubRuntime, drain: Callable[[], None]) -> None:
    _send(client, drain, _request("fb-3", "c-3"))
    with runtime.db.sessions() as session:
        ev = session.scalar(select(Event).where(Event.event_id == "fb-3"))
        stolen = make_token(runtime.settings, ev.tenant, "c-other", ev.id, "email", 10)
        other_tenant = make_token(runtime.settings, "acme", ev.customer_id, ev.id, "email", 10)
    assert client.get(f"/f/{stolen}").status_code == 403
    assert client.get(f"/f/{other_tenant}").status_code == 403
    assert _rows(runtime) == []


def test_comment_is_bound_to_the_token_and_stored_once(
        client: TestClient, runtime: HubRuntime, drain: Callable[[], None]) -> None:
    _send(client, drain, _request("fb-4"))
    path = _links(runtime, "fb-4")[6]
    page = client.get(path).text
    form = re.search(r'name="form" value="([^"]+)"', page).group(1)
    assert client.post(f"{path}/comment", data={"comment": "x", "form": "wrong"}
                       ).status_code == 403
    assert client.post(f"{path}/comment", data={"comment": "x", "form": form},
                       headers={"Origin": "https://evil.example"}).status_code == 403
    assert _rows(runtime)[0].comment is None
    done = client.post(f"{path}/comment", data={"comment": "Courier was late.", "form": form},
                       headers={"Origin": "http://testserver"})
    assert done.status_code == 200 and "Thank you for your comment" in done.text
    client.post(f"{path}/comment", data={"comment": "changed my mind", "form": form})
    assert _rows(runtime)[0].comment == "Courier was late."


def test_sms_carries_one_short_link_to_a_page_of_eleven_buttons(
        client: TestClient, runtime: HubRuntime, drain: Callable[[], None]) -> None:
    _send(client, drain, _request("fb-5", "c-5", phone_only=True))
    (sms,) = [m for m in read_outbox(Path(runtime.settings.console_outbox_path))
              if m.get("channel") == "sms"]
    body = sms["parts"]["body"]
    (link,) = re.findall(r"http://testserver(/f/\S+)", body)
    assert len(body) <= 160 and "PL0001234567" in body
    page = client.get(link, headers={"Accept-Language": "de"})
    assert page.status_code == 200 and 'lang="pl"' in page.text  # the SMS was in Polish
    buttons = re.findall(r'href="(/f/[^"]+)"', page.text)
    assert len(buttons) == 11 and _rows(runtime) == []  # the page itself records nothing
    assert client.get(buttons[10]).status_code == 200
    assert [r.score for r in _rows(runtime)] == [10]


def test_page_speaks_the_customers_language(client: TestClient, runtime: HubRuntime,
                                            drain: Callable[[], None]) -> None:
    for locale, needle in (("uk", "Дякуємо за оцінку"), ("de", "Vielen Dank für Ihre")):
        body = _request(f"fb-{locale}", f"c-{locale}")
        body["customer"]["locale"] = locale
        _send(client, drain, body)
        with runtime.db.sessions() as session:
            ev = session.scalar(select(Event).where(Event.event_id == f"fb-{locale}"))
            token = make_token(runtime.settings, ev.tenant, ev.customer_id, ev.id, "email", 7)
        page = client.get(f"/f/{token}")
        assert needle in page.text and f'lang="{locale}"' in page.text


def test_statistics_nps_and_averages_per_point_carrier_and_week(
        client: TestClient, runtime: HubRuntime, drain: Callable[[], None]) -> None:
    answers = [("s-1", "WAW1", "dhl", 10), ("s-2", "WAW1", "dhl", 9), ("s-3", "KRK2", "dhl", 8),
               ("s-4", "KRK2", "ups", 3)]
    for event_id, point, carrier, score in answers:
        _send(client, drain, _request(event_id, f"c-{event_id}", point=point, carrier=carrier))
        with runtime.db.sessions() as session:
            ev = session.scalar(select(Event).where(Event.event_id == event_id))
            token = make_token(runtime.settings, ev.tenant, ev.customer_id, ev.id, "email",
                               score)
        assert client.get(f"/f/{token}").status_code == 200
    reader = TestClient(create_app(runtime))
    reader.headers["Authorization"] = (
        f"Bearer {create_key(runtime.db, 'analytics', [Scope.FEEDBACK_READ])}")
    stats = reader.get("/v1/feedback").json()
    assert stats["overall"] == {"count": 4, "average": 7.5, "nps": 25.0, "promoters": 2,
                                "passives": 1, "detractors": 1}
    points = {p["pickup_point"]: p for p in stats["by_pickup_point"]}
    assert (points["WAW1"]["nps"], points["KRK2"]["nps"], points["KRK2"]["average"]) == (
        100.0, -50.0, 5.5)
    carriers = {c["carrier"]: c["count"] for c in stats["by_carrier"]}
    assert carriers == {"dhl": 3, "ups": 1}
    (week,) = stats["by_week"]
    assert re.fullmatch(r"\d{4}-W\d{2}", week["week"]) and week["count"] == 4
    assert reader.get("/v1/feedback?from=2000-01-01&to=2000-01-31").json()["overall"][
        "count"] == 0
    assert reader.get("/v1/feedback?from=2030-01-02&to=2030-01-01").status_code == 422
    other = TestClient(create_app(runtime))
    other.headers["Authorization"] = (
        f"Bearer {create_key(runtime.db, 'bravo', [Scope.FEEDBACK_READ], tenant='bravo')}")
    assert other.get("/v1/feedback").json()["overall"]["count"] == 0  # tenant-scoped
    events_only = TestClient(create_app(runtime))
    events_only.headers["Authorization"] = (
        f"Bearer {create_key(runtime.db, 'x', [Scope.EVENTS_READ])}")
    assert events_only.get("/v1/feedback").status_code == 403


def test_opted_out_customer_gets_no_feedback_request(
        client: TestClient, runtime: HubRuntime, drain: Callable[[], None]) -> None:
    client.put("/v1/customers/c-9", json={"email": "c-9@example.pl"})
    client.put("/v1/customers/c-9/preferences", json={"channels": {"feedback": []}})
    _send(client, drain, _request("fb-9", "c-9"))
    with runtime.db.sessions() as session:
        ev = session.scalar(select(Event).where(Event.event_id == "fb-9"))
        reasons = set(session.scalars(select(Decision.reason).where(Decision.event_pk == ev.id)))
    assert reasons == {"opted_out_category"}
    assert read_outbox(Path(runtime.settings.console_outbox_path)) == []


def test_export_lists_feedback_and_erasure_deletes_comments_keeps_scores(
        client: TestClient, runtime: HubRuntime, drain: Callable[[], None]) -> None:
    _send(client, drain, _request("fb-e", "c-e"))
    path = _links(runtime, "fb-e")[4]
    form = re.search(r'name="form" value="([^"]+)"', client.get(path).text).group(1)
    client.post(f"{path}/comment", data={"comment": "Ring twice, Anna", "form": form})
    export = client.get("/v1/customers/c-e/export").json()
    assert [(f["score"], f["comment"]) for f in export["feedback"]] == [(4, "Ring twice, Anna")]
    assert client.delete("/v1/customers/c-e").status_code in (200, 202, 204)
    (row,) = _rows(runtime)
    assert (row.score, row.comment, row.customer_key, row.pickup_point) == (4, None, None,
                                                                            "WAW123M")
    assert client.get(path).status_code == 403  # the link died with the customer


def test_preference_center_offers_the_feedback_opt_out_in_every_language(
        client: TestClient, runtime: HubRuntime, drain: Callable[[], None]) -> None:
    client.put("/v1/customers/c-pc", json={"email": "c-pc@example.pl", "locale": "pl"})
    link = client.post("/v1/customers/c-pc/preference-link").json()["url"]
    path = link.removeprefix("http://testserver")
    for lang, title in (("pl", "Ocena doręczenia"), ("en", "Delivery feedback"),
                        ("uk", "Оцінка доставки"), ("de", "Bewertung der Zustellung")):
        page = client.get(f"{path}?lang={lang}").text
        assert title in page and 'id="feedback-email" name="feedback"' in page
    form = {"transactional": ["sms", "email"], "preferred_transactional": "email",
            "preferred_feedback": "email", "frequency": "all", "locale": "pl",
            "tone": "formal"}  # every feedback channel unticked
    assert client.post(path, data=form, follow_redirects=False).status_code == 303
    assert client.get("/v1/customers/c-pc/preferences").json()["channels"]["feedback"] == []
    _send(client, drain, _request("fb-pc", "c-pc"))
    with runtime.db.sessions() as session:
        ev = session.scalar(select(Event).where(Event.event_id == "fb-pc"))
        reasons = set(session.scalars(select(Decision.reason).where(Decision.event_pk == ev.id)))
    assert reasons == {"opted_out_category"}
