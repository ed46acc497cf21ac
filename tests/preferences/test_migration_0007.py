"""Migration 0007 keeps the old consent times as evidence and can be undone."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from hub.db import Database
from hub.migrate import alembic_config, upgrade


def _migrate(db: Database, verb: str, target: str) -> None:
    cfg = alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, verb)(cfg, target)


def test_old_consent_times_become_claimed_times(database_url: str) -> None:
    db = Database(database_url)
    try:
        _migrate(db, "upgrade", "0004")
        with db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO consents (customer_id, purpose, channel, action, legal_basis, "
                "source, recorded_at) VALUES ('c-1', 'marketing', 'email', 'granted', "
                "'consent', 'checkout', :at)"), {"at": "2099-01-01 00:00:00"})
        upgrade(db)
        with db.engine.connect() as conn:
            claimed, recorded = conn.execute(text(
                "SELECT claimed_at, recorded_at FROM consents")).one()
        assert claimed == recorded and str(claimed).startswith("2099-01-01")
        _migrate(db, "downgrade", "0006")  # below 0007, whatever came after it
        tables = set(inspect(db.engine).get_table_names())
        assert not {"used_undo_tokens", "template_test_sends", "ui_sessions"} & tables
        assert "claimed_at" not in {c["name"] for c in inspect(db.engine).get_columns(
            "consents")}
    finally:
        db.dispose()
