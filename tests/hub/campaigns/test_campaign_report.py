"""The report of a campaign: clicks through /c/ and conversions posted afterwards land
under the right variant, and every count equals a direct count in the store."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub.audience_models import TrackedLink
from hub.clicks import token_of
from hub.consents import record_consent
from hub.db import utcnow
from hub.keys import Scope, create_key
from hub.models import CampaignRecipient, Customer, Notification
from hub.runtime import HubRuntime
from hub.worker import Worker
from preferences.consent import ConsentAction
from tests.hub.campaigns.builders import add_audience, add_customers, campaign_body
from tests.hub.campaigns.test_campaign_run import run_campaign

# both stores: the report is SQL with correlated subqueries, checked on PostgreSQL too


def test_clicks_and_conversions_land_under_the_right_variant_and_match_the_store(
        runtime: HubRuntime, client: TestClient) -> None:
    add_customers(runtime.db, 300)
    first = run_campaign(client, runtime, campaign_body(add_audience(runtime.db)))
    Worker(runtime.db, runtime.pipeline, runtime.settings).drain(timeout=60)
    secret = runtime.settings.secret_key.get_secret_value()
    with runtime.db.sessions() as s:
        links = s.execute(select(TrackedLink.token, TrackedLink.customer_pk, TrackedLink.variant,
                                 Customer.external_id)
                          .join(Customer, Customer.id == TrackedLink.customer_pk)
                          .where(TrackedLink.campaign_id == first)
                          .order_by(TrackedLink.id)).all()
        holdout = s.scalars(select(Customer.external_id)
                            .join(CampaignRecipient, CampaignRecipient.customer_pk == Customer.id)
                            .where(CampaignRecipient.variant == "holdout")).all()
    clicked = {"a": set(), "b": set()}
    for token, customer_pk, variant, _ in links[:40]:
        reply = client.get(f"/c/{token_of(secret, token)}", follow_redirects=False)
        assert reply.status_code == 302
        clicked[variant].add(customer_pk)
    now = utcnow().isoformat()
    converters = links[:6]
    for n, (_, _, _, external_id) in enumerate(converters):
        reply = client.post("/v1/conversions", json={
            "external_id": f"order-{n}", "customer_id": external_id, "value": "49.90",
            "currency": "PLN", "occurred_at": now, "campaign_id": first})
        assert reply.status_code in (200, 201), reply.text
    for n, external_id in enumerate(holdout[:3]):  # bought without any message
        client.post("/v1/conversions", json={
            "external_id": f"walk-in-{n}", "customer_id": external_id, "value": "10.00",
            "currency": "PLN", "occurred_at": now})
    with runtime.db.transaction() as s:  # one recipient unsubscribes after the send
        record_consent(s, links[0].external_id, "marketing", "email",
                       ConsentAction.WITHDRAWN, "unsubscribe_link")

    report = client.get(f"/v1/campaigns/{first}/report").json()
    groups = {g["variant"]: g for g in report["groups"]}
    with runtime.db.sessions() as s:
        for variant in ("a", "b", "holdout"):
            group = groups[variant]
            assigned = s.scalar(select(func.count()).where(
                CampaignRecipient.campaign_id == first, CampaignRecipient.variant == variant))
            sent = s.scalar(select(func.count(func.distinct(Notification.event_pk)))
                            .join(CampaignRecipient,
                                  CampaignRecipient.event_pk == Notification.event_pk)
                            .where(CampaignRecipient.variant == variant))
            assert (group["assigned"], group["sent"]) == (assigned, sent)
            assert group["queued"] == (0 if variant == "holdout" else assigned)
    for variant in ("a", "b"):
        assert groups[variant]["clicked"] == len(clicked[variant])
        assert groups[variant]["converted"] == sum(1 for c in converters if c.variant == variant)
    assert groups["holdout"]["converted"] == 3 and groups["holdout"]["sent"] == 0
    assert groups[links[0].variant]["unsubscribed"] == 1
    a = groups["a"]
    low, high = a["conversion_rate_ci95"]
    assert low <= a["conversion_rate"] <= high and 0 <= a["lift"]["p_value"] <= 1

    who = links[0].external_id  # export shows the campaign; erasure leaves no recipient row
    exported = client.get(f"/v1/customers/{who}/export").json()["campaigns"]
    assert exported == [{"campaign_id": first, "name": "Black Week",
                         "variant": links[0].variant, "state": "queued",
                         "send_at": exported[0]["send_at"]}]
    assert client.delete(f"/v1/customers/{who}").status_code in (200, 202, 204)
    with runtime.db.sessions() as s:
        assert not s.scalar(select(func.count()).select_from(CampaignRecipient)
                            .join(Customer, Customer.id == CampaignRecipient.customer_pk)
                            .where(Customer.external_id == who))
        assert s.scalar(select(func.count()).select_from(CampaignRecipient)) == 299


def test_template_stats_count_the_tenants_sends_per_channel_and_locale(
        runtime: HubRuntime, client: TestClient) -> None:
    from tests.helpers import event

    for n in range(3):
        body = event(f"evt-{n}", type_="parcel.out_for_delivery")
        body["customer"] = {**body["customer"], "id": f"c-{n}", "locale": "en" if n else "pl"}
        assert client.post("/v1/events", json=body).status_code == 202
    Worker(runtime.db, runtime.pipeline, runtime.settings).drain(timeout=30)
    stats = client.get("/v1/templates/parcel.out_for_delivery/stats").json()
    assert stats["category"] == "transactional"
    assert {(r["channel"], r["locale"], r["sent"]) for r in stats["rows"]} == {
        ("sms", "pl", 1), ("sms", "en", 2)}
    assert client.get("/v1/templates/parcel.nope/stats").status_code == 404
    other = create_key(runtime.db, "acme-app", [Scope.TEMPLATES_READ], tenant="acme")
    client.headers["Authorization"] = f"Bearer {other}"
    assert client.get("/v1/templates/parcel.out_for_delivery/stats").json()["rows"] == []
