"""Audiences: the filter language (hostile input first), its SQL compiler against the
store, members for campaigns, the API and tenant isolation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import event

from hub import activity, audiences
from hub.api.app import create_app
from hub.audience_filter import parse_filter
from hub.audience_models import CustomerActivity
from hub.consents import record_consent
from hub.keys import Scope
from hub.models import Customer, PushSubscriptionRow
from hub.runtime import HubRuntime
from preferences import ConsentAction
from tests.conftest import PG_BASE, fresh_pg_url, need_service
from tests.helpers import api_key, make_runtime

NOW = datetime.now(UTC)
# The issue's example: Polish, individual, >= 3 parcels in 90 days, marketing consent on
# e-mail or push, not clicked in 60 days.
EXAMPLE = {"all": [
    {"field": "locale", "op": "eq", "value": "pl"},
    {"field": "segment", "op": "eq", "value": "individual"},
    {"field": "activity.parcels_90d", "op": "gte", "value": 3},
    {"consent": {"purpose": "marketing", "channels": ["email", "push"], "any": True}},
    {"field": "activity.last_click_at", "op": "not_within_days", "value": 60},
]}


@pytest.fixture
def database_url(tmp_path: Path) -> str:  # this module's logic runs on SQLite; PG below
    return f"sqlite:///{tmp_path / 'hub.db'}"


def _customer(session: Any, tenant: str, ext: str, *, locale: str = "pl",
              segment: str = "individual", email: bool = True, parcels: int = 3,
              clicked_days_ago: int | None = None, consent: str | None = "granted",
              traits: dict[str, Any] | None = None, push: bool = False) -> int:
    row = Customer(tenant=tenant, external_id=ext, locale=locale, segment=segment,
                   email=f"{ext}@example.pl" if email else None, email_verified=email,
                   phone="+48512345678", phone_verified=True, preferences={}, traits=traits)
    session.add(row)
    session.flush()
    session.add(CustomerActivity(
        customer_pk=row.id, tenant=tenant, parcels_90d=parcels, parcels_30d=parcels,
        parcels_365d=parcels,
        last_click_at=NOW - timedelta(days=clicked_days_ago) if clicked_days_ago else None))
    if push:
        session.add(PushSubscriptionRow(tenant=tenant, customer_pk=row.id,
                                        endpoint=f"https://push.example/{ext}",
                                        p256dh="x" * 20, auth="y" * 10))
    if consent is not None:
        record_consent(session, ext, "marketing", "email", ConsentAction.GRANTED, "checkout",
                       tenant=tenant)
        if consent == "withdrawn":  # the later row wins, as in the ledger
            record_consent(session, ext, "marketing", "email", ConsentAction.WITHDRAWN,
                           "unsubscribe_link", tenant=tenant)
    return row.id


def _population(runtime: HubRuntime) -> dict[str, int]:
    with runtime.db.transaction() as s:
        return {
            "match": _customer(s, "default", "c-match", push=True,
                               traits={"tier": "gold", "points": 1500, "vip": True}),
            "clicked": _customer(s, "default", "c-clicked", clicked_days_ago=10),
            "clicked-long-ago": _customer(s, "default", "c-old-click", clicked_days_ago=90,
                                          traits={"tier": "silver", "points": "many"}),
            "english": _customer(s, "default", "c-en", locale="en"),
            "business": _customer(s, "default", "c-biz", segment="business"),
            "few-parcels": _customer(s, "default", "c-few", parcels=2),
            "withdrawn": _customer(s, "default", "c-withdrawn", consent="withdrawn"),
            "no-consent": _customer(s, "default", "c-none", consent=None),
            "other-tenant": _customer(s, "acme", "c-acme"),
        }


def _count(runtime: HubRuntime, raw: dict[str, Any], tenant: str = "default"
           ) -> audiences.AudienceCount:
    with runtime.db.sessions() as session:
        return audiences.count(session, tenant, parse_filter(raw))


def _in_group(condition: dict[str, Any]) -> dict[str, Any]:
    return {"all": [{"field": "locale", "op": "eq", "value": "pl"}, condition]}


@pytest.mark.parametrize("raw, path", [
    (_in_group({"field": "password", "op": "eq", "value": "x"}), "all/1/field"),
    (_in_group({"field": "activity.parcels_90d", "op": "gte", "value": "3"}), "all/1"),
    (_in_group({"field": "activity.parcels_90d", "op": "gte", "value": 1e300}), "all/1"),
    (_in_group({"field": "locale", "op": "gte", "value": 3}), "all/1"),
    (_in_group({"field": "locale", "op": "eq", "value": "xx"}), "all/1"),
    (_in_group({"field": "locale", "op": "in", "value": ["pl"] * 201}), "all/1"),
    (_in_group({"field": "traits.Tier", "op": "eq", "value": "gold"}), "all/1/field"),
    (_in_group({"field": "traits.tier", "op": "eq", "value": {"$ne": 1}}), "all/1/value"),
    (_in_group({"field": "created_at", "op": "within_days", "value": 99999}), "all/1"),
    (_in_group({"consent": {"purpose": "transactional", "channels": ["email"]}}),
     "all/1/consent/purpose"),
    (_in_group({"field": "locale", "op": "eq", "value": "pl", "sql": "1=1"}), "all/1/sql"),
    (_in_group({"field": "locale", "op": "eq", "value": "pl", "any": [
        {"field": "locale", "op": "eq", "value": "en"}]}), "all/1"),  # two kinds in one
    (_in_group({"consent": {"purpose": "marketing", "channels": ["email"]}, "op": "eq"}),
     "all/1"),
    ({"drop": "table"}, "drop"),
    ({"all": []}, "all"),
])
def test_a_bad_filter_is_refused_with_the_path_of_the_problem(raw: dict[str, Any], path: str
                                                              ) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_filter(raw)
    paths = ["/".join(str(p) for p in e["loc"]) for e in caught.value.errors()]
    assert path in paths, paths


def test_depth_and_size_are_bounded() -> None:
    node: dict[str, Any] = {"field": "locale", "op": "eq", "value": "pl"}
    for _ in range(7):
        node = {"not": node}
    with pytest.raises(ValidationError, match="deeper"):
        parse_filter({"all": [node]})
    many = [{"field": "locale", "op": "eq", "value": "pl"}] * 61
    with pytest.raises(ValidationError):
        parse_filter({"any": many})


def test_the_issue_example_counts_matched_and_reachable_per_channel(runtime: HubRuntime
                                                                     ) -> None:
    ids = _population(runtime)
    counted = _count(runtime, EXAMPLE)
    assert counted.matched == 2  # c-match and c-old-click; never the other tenant's twin
    assert counted.reachable == {"email": 2, "sms": 0, "push": 0}  # consent only on e-mail
    with runtime.db.sessions() as session:
        audience = audiences.create(session, "default", "p", "example", parse_filter(EXAMPLE))
        session.commit()
        assert list(audiences.members(session, "default", audience.id)) == sorted(
            [ids["match"], ids["clicked-long-ago"]])
        assert list(audiences.members(session, "acme", audience.id)) == []  # not theirs
        assert list(audiences.members(session, "default", audience.public_id)) == sorted(
            [ids["match"], ids["clicked-long-ago"]])


@pytest.mark.parametrize("condition, expected", [
    ({"field": "traits.tier", "op": "eq", "value": "gold"}, {"c-match"}),
    ({"field": "traits.tier", "op": "in", "value": ["gold", "silver"]},
     {"c-match", "c-old-click"}),
    ({"field": "traits.points", "op": "gte", "value": 1000}, {"c-match"}),  # "many": no match
    ({"field": "traits.vip", "op": "eq", "value": True}, {"c-match"}),
    ({"field": "traits.points", "op": "exists", "value": True}, {"c-match", "c-old-click"}),
    ({"field": "activity.last_click_at", "op": "within_days", "value": 30}, {"c-clicked"}),
    ({"reachable": {"channels": ["push"]}}, {"c-match"}),
    ({"field": "phone_country", "op": "eq", "value": "DE"}, set()),
    ({"any": [{"field": "locale", "op": "eq", "value": "en"},
              {"field": "segment", "op": "eq", "value": "business"}]}, {"c-en", "c-biz"}),
    ({"not": {"consent": {"purpose": "marketing", "channels": ["email"]}}},
     {"c-withdrawn", "c-none"}),
])
def test_conditions_select_the_right_customers(runtime: HubRuntime, condition: dict[str, Any],
                                               expected: set[str]) -> None:
    _population(runtime)
    with runtime.db.sessions() as session:
        audience = audiences.create(session, "default", "p", "t", parse_filter(condition))
        names = {session.get(Customer, pk).external_id  # type: ignore[union-attr]
                 for pk in audiences.members(session, "default", audience.id)}
    assert names == expected
    assert _count(runtime, condition).matched == len(expected)


def test_members_stream_in_chunks_in_id_order(runtime: HubRuntime, monkeypatch: Any) -> None:
    monkeypatch.setattr(audiences, "MEMBER_CHUNK", 2)
    _population(runtime)
    with runtime.db.sessions() as session:
        audience = audiences.create(session, "default", "p", "all-pl",
                                    parse_filter({"field": "locale", "op": "eq", "value": "pl"}))
        pks = list(audiences.members(session, "default", audience.id))
    assert pks == sorted(pks) and len(pks) == 7


@pytest.fixture
def client(runtime: HubRuntime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as c:
        c.headers["Authorization"] = f"Bearer {api_key(runtime, Scope.AUDIENCES_WRITE, Scope.AUDIENCES_READ)}"
        yield c


def test_the_api_saves_lists_counts_changes_and_deletes(client: TestClient,
                                                        runtime: HubRuntime) -> None:
    _population(runtime)
    made = client.post("/v1/audiences", json={"name": "Example", "filter": EXAMPLE})
    assert made.status_code == 201, made.text
    aid = made.json()["id"]
    assert client.get("/v1/audiences").json()["items"][0]["id"] == aid
    counted = client.post(f"/v1/audiences/{aid}/count").json()
    assert (counted["matched"], counted["reachable"]["email"]) == (2, 2)
    live = client.post("/v1/audiences/count", json={"filter": EXAMPLE, "purpose": "loyalty"})
    assert live.json()["reachable"] == {"sms": 0, "email": 0, "push": 0}  # no loyalty consent
    changed = client.put(f"/v1/audiences/{aid}", json={
        "name": "English", "filter": {"field": "locale", "op": "eq", "value": "en"}})
    assert changed.json()["name"] == "English"
    assert client.post(f"/v1/audiences/{aid}/count").json()["matched"] == 1
    assert client.delete(f"/v1/audiences/{aid}").status_code == 204
    assert client.get(f"/v1/audiences/{aid}").status_code == 404


def test_hostile_requests_are_problems_and_write_nothing(client: TestClient,
                                                         runtime: HubRuntime) -> None:
    bad = client.post("/v1/audiences", json={"name": "x", "filter": {
        "all": [{"field": "activity.parcels_9000d", "op": "gte", "value": 3}]}})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert [e["path"] for e in bad.json()["errors"]] == ["filter/all/0/field"]
    assert client.post("/v1/audiences", json={"name": "x", "tenant": "acme",
                                              "filter": EXAMPLE}).status_code == 422
    assert client.get("/v1/audiences").json()["items"] == []
    # another tenant's audience is invisible: 404 for read, change, count and delete
    theirs = TestClient(create_app(runtime))
    theirs.headers["Authorization"] = "Bearer " + _acme_key(runtime)
    aid = theirs.post("/v1/audiences", json={"name": "acme", "filter": EXAMPLE}).json()["id"]
    assert client.get(f"/v1/audiences/{aid}").status_code == 404
    assert client.put(f"/v1/audiences/{aid}", json={"name": "x", "filter": EXAMPLE}
                      ).status_code == 404
    assert client.post(f"/v1/audiences/{aid}/count").status_code == 404
    assert client.delete(f"/v1/audiences/{aid}").status_code == 404
    assert client.get("/v1/audiences/" + "9" * 40).status_code == 404
    reader = TestClient(create_app(runtime))
    reader.headers["Authorization"] = "Bearer " + api_key(runtime, Scope.AUDIENCES_READ,
                                                          producer="reader")
    assert reader.post("/v1/audiences", json={"name": "x", "filter": EXAMPLE}
                       ).status_code == 403


def _acme_key(runtime: HubRuntime) -> str:
    from hub.keys import create_key

    return create_key(runtime.db, "acme-carrier", [Scope.ADMIN], tenant="acme")


@pytest.mark.postgres
def test_postgresql_counts_the_example_in_one_query(tmp_path: Path) -> None:
    need_service("PostgreSQL", 5432)
    runtime = make_runtime(fresh_pg_url(PG_BASE), tmp_path)
    try:
        _population(runtime)
        with runtime.db.transaction() as session:
            pk = session.scalar(Customer.__table__.select().with_only_columns(
                Customer.id).where(Customer.external_id == "c-few"))
            activity.note_parcels(session, [activity.ParcelSeen(
                pk, "default", f"PL{i}", NOW - timedelta(days=i), "courier") for i in range(3)])
        statements: list[str] = []
        event.listen(runtime.db.engine, "before_cursor_execute",
                     lambda _c, _cur, sql, *_: statements.append(sql))
        assert _count(runtime, EXAMPLE).matched == 3  # c-few now has 3 parcels in 90 days
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 1 and "customer_activity" in selects[0]  # one query
        counted = _count(runtime, {"all": [
            {"field": "traits.points", "op": "gte", "value": 1000},  # "many" is no error
            {"field": "traits.vip", "op": "eq", "value": True},
            {"field": "activity.last_delivery_method", "op": "eq", "value": "courier"}]})
        assert counted.matched == 0
        assert _count(runtime, {"field": "traits.tier", "op": "eq", "value": "gold"}
                      ).reachable == {"sms": 0, "email": 1, "push": 0}
    finally:
        runtime.db.dispose()
