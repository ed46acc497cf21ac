"""Inbox rows as the `inbox` channel writes them, inserted directly (the inbox API tests do
not depend on the channel)."""

from __future__ import annotations

import secrets
from datetime import datetime

from hub.customers import get_customer
from hub.db import Database
from hub.models import DEFAULT_TENANT, InboxItem


def add_item(db: Database, customer_id: str, title: str = "Paczka czeka",
             tenant: str = DEFAULT_TENANT, created_at: datetime | None = None) -> int:
    """Inserts one inbox item for an existing customer; returns its id."""
    with db.transaction() as session:
        customer = get_customer(session, tenant, customer_id)
        assert customer is not None, customer_id
        item = InboxItem(tenant=tenant, customer_pk=customer.id,
                         idempotency_key=secrets.token_hex(16),
                         event_type="parcel.ready_for_pickup", category="transactional",
                         title=title, body=f"{title}: PL0001234567", parcel="PL0001234567",
                         action_url="https://track.example.pl/PL0001234567", locale="pl")
        if created_at is not None:
            item.created_at = created_at
        session.add(item)
        session.flush()
        return item.id
