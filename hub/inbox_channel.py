"""The inbox channel's provider is the hub itself: a send writes one `inbox_items` row that
the carrier's app reads (the inbox API and its live stream only read this table)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from channels import OutgoingMessage, SendResult
from hub.db import Database
from hub.models import Customer, InboxItem


class InboxAdapter:
    """Writes a rendered message into the customer's inbox, once per idempotency key."""

    name = "inbox"
    authoritative_reconcile = True  # the table is the provider: absence proves no write

    def __init__(self, db: Database) -> None:
        self.db = db

    def send(self, message: OutgoingMessage) -> SendResult:
        """Insert-or-ignore by the message's key, so a retried send never makes two rows."""
        meta = message.metadata
        with self.db.transaction() as session:
            customer_pk = session.scalar(select(Customer.id).where(
                Customer.tenant == meta["tenant"], Customer.external_id == message.address))
            if customer_pk is None:  # erased after the send record was opened
                return SendResult.permanent("no such customer")
            insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
            session.execute(insert(InboxItem).values(
                self._row(message, meta, customer_pk)).on_conflict_do_nothing(
                index_elements=["idempotency_key"]))
            item_id = session.scalar(select(InboxItem.id).where(
                InboxItem.idempotency_key == message.idempotency_key))
        return SendResult.sent(f"inbox:{item_id}")

    def reconcile(self, idempotency_key: str) -> SendResult | None:
        """The item written under this key, if any (authoritative)."""
        with self.db.sessions() as session:
            item_id = session.scalar(select(InboxItem.id).where(
                InboxItem.idempotency_key == idempotency_key))
        return SendResult.sent(f"inbox:{item_id}") if item_id is not None else None

    @staticmethod
    def _row(message: OutgoingMessage, meta: dict[str, Any], customer_pk: int
             ) -> dict[str, Any]:
        parts = message.parts

        def link(name: str) -> str | None:
            value = parts.get(name) or None
            return value if value is None or len(value) <= 2048 else None

        return {"tenant": meta["tenant"], "customer_pk": customer_pk,
                "idempotency_key": message.idempotency_key,
                "event_type": meta["event_type"], "category": meta["category"],
                "title": parts["title"][:300], "body": parts["body"],
                "action_url": link("url"), "icon": link("icon"),
                "parcel": meta.get("tracking_number"), "locale": message.locale}
