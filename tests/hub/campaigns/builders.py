"""Builders for campaign tests: many customers in a few statements, an audience over them,
a campaign body."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select

from hub import audiences
from hub.activity import consent_bit
from hub.audience_filter import parse_filter
from hub.audience_models import CustomerActivity
from hub.db import Database, utcnow
from hub.models import ConsentRecord, Customer

EVERYONE = {"field": "segment", "op": "in", "value": ["individual", "business"]}


def add_customers(db: Database, count: int, *, tenant: str = "default",
                  consent: Any = lambda i: True, prefix: str = "c") -> list[int]:
    """`count` customers with a verified e-mail; those `consent(i)` picks have a marketing
    e-mail consent. Returns their pks."""
    now = utcnow() - timedelta(days=1)
    rows = [{"tenant": tenant, "external_id": f"{prefix}{i}", "name": f"Klient {i}",
             "email": f"{prefix}{i}@example.pl", "email_verified": True, "phone_verified": False,
             "locale": "pl", "tone": "formal", "time_zone": "Europe/Warsaw",
             "segment": "individual", "preferences": {}, "created_at": now, "updated_at": now}
            for i in range(count)]
    consents = [{"tenant": tenant, "customer_id": f"{prefix}{i}", "purpose": "marketing",
                 "channel": "email", "action": "granted", "legal_basis": "consent",
                 "source": "api", "recorded_at": now} for i in range(count) if consent(i)]
    with db.transaction() as session:
        for start in range(0, count, 5000):
            session.execute(insert(Customer), rows[start:start + 5000])
        for start in range(0, len(consents), 5000):
            session.execute(insert(ConsentRecord), consents[start:start + 5000])
        # what hub.consents.record_consent keeps beside the ledger: the consent bits that
        # audiences filter on (the ledger rows above were inserted in bulk)
        index = {f"{prefix}{i}": i for i in range(count)}
        mine = session.execute(select(Customer.id, Customer.external_id).where(
            Customer.tenant == tenant, Customer.external_id.in_(index))).all()
        granted = consent_bit("marketing", "email")
        session.execute(insert(CustomerActivity), [
            {"customer_pk": pk, "tenant": tenant, "updated_at": now,
             "consent_mask": granted if consent(index[ext]) else 0} for pk, ext in mine])
        return list(session.scalars(select(Customer.id).where(Customer.tenant == tenant)
                                    .order_by(Customer.id)))


def add_audience(db: Database, tenant: str = "default") -> str:
    """An audience of every customer of the tenant; its public id."""
    with db.transaction() as session:
        row = audiences.create(session, tenant, "test", "everyone", parse_filter(EVERYONE))
        return row.public_id


def campaign_body(audience_id: str, **over: Any) -> dict[str, Any]:
    """Two variants 50/50 by e-mail, 10 % holdout, sent now."""
    def copy(subject: str) -> dict[str, Any]:
        return {"pl": {"email": {"subject": subject, "heading": "Dzień dobry, {{ customer.name }}",
                                 "body": "Nadaj paczkę taniej do niedzieli.",
                                 "button": "Sprawdź ofertę"},
                       "url": "https://parcelhub.example/oferta"}}

    body: dict[str, Any] = {
        "name": "Black Week", "audience_id": audience_id, "category": "marketing",
        "channels": ["email"], "holdout_percent": 10,
        "variants": [{"name": "a", "weight": 50, "templates": copy("Wysyłka -20%")},
                     {"name": "b", "weight": 50, "templates": copy("Taniej o 20%")}],
        "schedule": {"kind": "now"},
    }
    body.update(over)
    return body
