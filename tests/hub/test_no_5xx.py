"""Inputs that answered 500 before: each is now a 4xx problem+json and writes nothing.

Every case runs on SQLite and on PostgreSQL (whose text columns refuse NUL, whose JSON
refuses NaN, and whose readers race writers)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from hub.api import create_app
from hub.models import ConsentRecord, Customer, Event
from hub.runtime import HubRuntime
from tests.helpers import api_key, event, make_runtime

BAD_INSTANTS = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.fixture
def hub(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, HubRuntime]]:
    runtime = make_runtime(database_url, tmp_path)
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {api_key(runtime)}"
        yield client, runtime
    runtime.db.dispose()


def _problem(reply: Any, status: int | None = None) -> dict[str, Any]:
    assert 400 <= reply.status_code < 500, (reply.status_code, reply.text)
    if status is not None:
        assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = reply.json()
    assert body["status"] == reply.status_code and body["type"].startswith("https://")
    return body


def _count(runtime: HubRuntime, model: Any) -> int:
    with runtime.db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _raw(client: TestClient, url: str, text: str) -> Any:
    return client.post(url, content=text.encode(), headers={"content-type": "application/json"})


@pytest.mark.parametrize("instant", BAD_INSTANTS)
def test_out_of_range_instants_are_422(hub: tuple[TestClient, HubRuntime], instant: str) -> None:
    client, runtime = hub
    _problem(client.post("/v1/events", json=event("e-time", occurred_at=instant)), 422)
    late = event("e-eta")
    late["parcel"]["pickup_point"]["deadline"] = instant
    _problem(client.post("/v1/events", json=late), 422)
    assert client.put("/v1/customers/c-1", json={}).status_code == 201
    consent = {"purpose": "marketing", "channel": "email", "action": "granted",
               "source": "api", "at": instant}
    _problem(client.post("/v1/customers/c-1/consents", json=consent), 422)
    assert _count(runtime, Event) == 0 and _count(runtime, ConsentRecord) == 0


def test_cursor_beyond_the_id_range_is_422(hub: tuple[TestClient, HubRuntime]) -> None:
    client, _ = hub
    _problem(client.get("/v1/notifications", params={"after": 2**70}), 422)
    assert client.get("/v1/notifications", params={"after": 2**31 - 1}).status_code == 200


def _nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["a"] = {}
        node = node["a"]
    return root


@pytest.mark.parametrize("case", ["deep", "surrogate", "nan", "infinity", "nul-id",
                                  "nul-data-key", "deep-array"])
def test_unstorable_json_is_400(hub: tuple[TestClient, HubRuntime], case: str) -> None:
    client, runtime = hub
    body = json.dumps(event("e-json"))
    text = {
        "deep": json.dumps(event("e-json", data=_nested(900))),
        "deep-array": '{"events": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "surrogate": body.replace('"data": {}', '"data": {"x": "\\ud800"}'),
        "nan": body.replace('"data": {}', '"data": {"x": NaN}'),
        "infinity": body.replace('"data": {}', '"data": {"x": -Infinity}'),
        "nul-id": body.replace('"e-json"', '"e-\\u0000json"'),
        "nul-data-key": body.replace('"data": {}', '"data": {"k\\u0000": 1}'),
    }[case]
    url = "/v1/events/batch" if case == "deep-array" else "/v1/events"
    _problem(_raw(client, url, text), 400)
    assert _count(runtime, Event) == 0


def test_nul_in_path_and_query_is_400(hub: tuple[TestClient, HubRuntime]) -> None:
    client, _ = hub
    _problem(client.get("/v1/events/a%00b"), 400)
    _problem(client.get("/v1/notifications", params={"customer_id": "c\x001"}), 400)
    _problem(client.put("/v1/customers/c%001", json={}), 400)


@pytest.mark.parametrize("amount", ["1e20", "1e999999", "1234567890123", "1.23456", "-1", "NaN"])
def test_amounts_the_renderer_cannot_format_are_422(hub: tuple[TestClient, HubRuntime],
                                                    amount: str) -> None:
    client, runtime = hub
    parcel = {"tracking_number": "PL0001234567", "customs": {"amount": amount, "currency": "PLN"}}
    body = event("e-amount", type_="parcel.customs_payment_required", parcel=parcel)
    _problem(client.post("/v1/events", json=body), 422)
    assert _count(runtime, Event) == 0
    parcel["customs"]["amount"] = "999999999999.9999"  # the largest accepted one renders
    assert client.post("/v1/events", json=body).status_code == 202


MALFORMED_PARCELS = [{"cod": {"amount": "x", "currency": "PLN"}},
                     {"customs": {"amount": "1e999999", "currency": "PLN"}},
                     {"customs": {"amount": "12", "currency": "PLN"}, "links": "x"},
                     {"tracking_number": 5, "cod": []}, {"pickup_point": "x"},
                     {"eta": {"from": "0001-01-01T00:00:00+01:00", "to": "x"}}]


@pytest.mark.parametrize("parcel", MALFORMED_PARCELS)
def test_preview_with_malformed_parcel_is_a_warning(hub: tuple[TestClient, HubRuntime],
                                                    parcel: dict[str, Any]) -> None:
    client, _ = hub
    reply = client.post("/v1/templates/preview", json={
        "event_type": "parcel.customs_payment_required", "channel": "sms", "parcel": parcel})
    assert reply.status_code in (200, 422), reply.text
    if reply.status_code == 200:
        assert reply.json()["ok"] is False and reply.json()["warnings"]
    page = client.get("/ui/templates", params={
        "event_type": "parcel.customs_payment_required", "sample": json.dumps({"parcel": parcel})},
        cookies=_ui_cookie(client))
    assert page.status_code == 200, page.text


def _ui_cookie(client: TestClient) -> dict[str, str]:
    token = client.headers["Authorization"].split()[1]
    reply = client.post("/ui/login", data={"api_key": token}, follow_redirects=False)
    return dict(reply.cookies)


def test_huge_push_expiration_is_422(hub: tuple[TestClient, HubRuntime]) -> None:
    client, _ = hub
    assert client.put("/v1/customers/c-1", json={}).status_code == 201
    sub = {"endpoint": "https://fcm.googleapis.com/fcm/send/abc", "expirationTime": 10**20,
           "keys": {"p256dh": "A" * 20, "auth": "B" * 10}}
    _problem(client.post("/v1/customers/c-1/push-subscriptions", json=sub), 422)
    sub["expirationTime"] = 1_900_000_000_000
    assert client.post("/v1/customers/c-1/push-subscriptions", json=sub).status_code == 201


def test_fallbacks_are_problem_json(hub: tuple[TestClient, HubRuntime]) -> None:
    client, _ = hub
    _problem(client.get("/no/such/route"), 404)
    _problem(client.delete("/v1/events"), 405)
    _problem(client.post("/v1/events", content=b"{", headers={"content-type": "application/json"}),
             400)


def race_on_insert(runtime: HubRuntime, table: str, parties: int = 2) -> threading.Barrier:
    """Holds each thread's first INSERT into `table` until all of them reach theirs, so every
    one has looked (and found nothing) before any inserts: the race, every time."""
    barrier = threading.Barrier(parties, timeout=10)
    waited: set[int] = set()

    @sa_event.listens_for(runtime.db.engine, "before_cursor_execute")
    def _hold(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        me = threading.get_ident()
        if statement.startswith(f"INSERT INTO {table}") and me not in waited:
            waited.add(me)
            barrier.wait()

    return barrier


def together(*calls: Any) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_concurrent_put_of_a_new_customer(hub: tuple[TestClient, HubRuntime]) -> None:
    client, runtime = hub
    if runtime.db.dialect != "postgresql":
        pytest.skip("SQLite writers hold the database lock from their first read: no race")
    race_on_insert(runtime, "customers")
    body = {"name": "Anna", "locale": "pl"}
    replies = together(lambda: client.put("/v1/customers/c-race", json=body),
                       lambda: client.put("/v1/customers/c-race", json=body))
    assert sorted(r.status_code for r in replies) == [200, 201], [r.text for r in replies]
    assert _count(runtime, Customer) == 1


def test_a_500_is_problem_json_and_its_log_holds_no_sql_parameters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug reaching the store: the client gets a problem document, the log gets the
    statement without its parameters (they are the customer's data)."""
    import io

    from sqlalchemy import text

    from hub import intake
    from hub.logs import configure

    def broken(db: Any, producer: str, events: Any, tenant: str) -> Any:
        with db.transaction() as session:  # a statement the store rejects, with personal data
            session.execute(text("INSERT INTO customer_tombstones (digest, erased_at) "
                                 "VALUES (:who, NULL)"),  # NOT NULL: an IntegrityError
                            {"who": "+48512345678 anna.kowalska@example.pl"})

    monkeypatch.setattr(intake, "_accept_once", broken)
    stream = io.StringIO()
    configure("INFO", json=True, stream=stream)
    try:
        runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
        with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {api_key(runtime)}"
            reply = client.post("/v1/events", json=event("e-bug"))
    finally:
        configure("INFO", json=True)
    assert reply.status_code == 500
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["type"].endswith("/internal")
    logged = stream.getvalue()
    assert "customer_tombstones" in logged and "parameters hidden" in logged
    assert "512345678" not in logged and "kowalska" not in logged
