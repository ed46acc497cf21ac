"""Migration 0005 (tenants): a store at 0004 with rows upgrades cleanly; everything lands in
the `default` tenant, suppressions keep working by their keyed digest, and the limiter's rows
are re-keyed to the customer key."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from hub.customers import customer_key, get_customer, is_erased, tombstone_digest, tombstone_key
from hub.db import Database
from hub.migrate import alembic_config, upgrade
from hub.settings import get_settings
from hub.suppressions import is_suppressed

ROWS = [
    "INSERT INTO api_keys (key_id, secret_hash, producer, scopes, created_at) VALUES "
    "('k1', 'h', 'p', '[\"admin\"]', '2026-11-01 10:00:00')",
    "INSERT INTO customers (external_id, name, phone, locale, tone, time_zone, segment, "
    "preferences, created_at, updated_at, phone_verified, email_verified) VALUES "
    "('c-1', 'Anna', '+48512345678', 'pl', 'formal', 'Europe/Warsaw', 'individual', '{}', "
    "'2026-11-01 10:00:00', '2026-11-01 10:00:00', true, false)",
    "INSERT INTO consents (customer_id, purpose, channel, action, legal_basis, source, "
    "recorded_at) VALUES ('c-1', 'marketing', 'sms', 'granted', 'consent', 'checkout', "
    "'2026-11-01 10:00:00')",
    "INSERT INTO customer_tombstones (digest, erased_at) VALUES (:tomb, '2026-11-01 10:00:00')",
    "INSERT INTO channel_suppressions (channel, address, reason, source, created_at) VALUES "
    "('sms', '+48512345678', 'recipient_opt_out', 'twilio', '2026-11-01 10:00:00')",
    "INSERT INTO inbound_keywords (channel, address, keyword, action, provider, received_at) "
    "VALUES ('sms', '+48512345678', 'STOP', 'withdraw', 'twilio', '2026-11-01 10:00:00')",
    "INSERT INTO events (producer, event_id, type, category, customer_id, occurred_at, "
    "received_at, payload_hash, state) VALUES ('p', 'e-1', 'parcel.delivered', "
    "'transactional', 'c-1', '2026-11-01 10:00:00', '2026-11-01 10:00:00', 'x', 'processed')",
    "INSERT INTO throttle_parcels VALUES ('c-1', 'PL1', 3, 1)",
    "INSERT INTO throttle_marks VALUES ('c-1', 'PL1', 'parcel.delivered', 'sms', 'sent', 'o', 1)",
    "INSERT INTO throttle_hits VALUES ('c-1|sms-daily|sms', 'o', 1)",
    "INSERT INTO throttle_digest (customer_id, item_ref, event_type, category, occurred_ms, "
    "due_ms, summary) VALUES ('c-1', 'r1', 'marketing.campaign', 'marketing', 1, 2, '{}')",
]


def test_store_at_0004_with_rows_upgrades_into_the_default_tenant(database_url: str) -> None:
    db = Database(database_url)
    key = tombstone_key(get_settings())
    try:
        cfg = alembic_config(db.url)
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0004")
        with db.engine.begin() as conn:
            for sql in ROWS:
                conn.execute(text(sql), {"tomb": tombstone_digest(key, "c-gone")}
                             if ":tomb" in sql else {})
        upgrade(db)
        ckey = customer_key(key, "default", "c-1")
        with db.sessions() as session:
            customer = get_customer(session, "default", "c-1")
            assert customer is not None and customer.phone_verified
            assert is_erased(session, "default", key, "c-gone")
            assert is_suppressed(session, "default", key, "sms", "+48512345678")
            assert not is_suppressed(session, "other", key, "sms", "+48512345678")
            for table in ("api_keys", "customers", "consents", "events", "inbound_keywords"):
                assert session.execute(text(f"SELECT DISTINCT tenant FROM {table}")
                                       ).scalars().all() == ["default"]
            for table in ("throttle_parcels", "throttle_marks", "throttle_digest"):
                assert session.execute(text(f"SELECT customer_id FROM {table}")
                                       ).scalars().all() == [ckey]
            assert session.execute(text("SELECT scope_key FROM throttle_hits")
                                   ).scalars().all() == [f"{ckey}|sms-daily|sms"]
    finally:
        db.dispose()
