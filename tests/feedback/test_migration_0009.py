"""Migration 0009 creates the feedback and webhook tables as the models describe them and
removes them again."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from hub.db import Database
from hub.migrate import alembic_config, upgrade

TABLES = {"feedback_responses", "webhook_endpoints", "webhook_deliveries"}


def test_upgrade_creates_and_downgrade_removes_the_tables(database_url: str) -> None:
    db = Database(database_url)
    try:
        upgrade(db)
        found = inspect(db.engine)
        assert set(found.get_table_names()) >= TABLES
        assert {c["name"] for c in found.get_columns("feedback_responses")} >= {
            "score", "comment", "customer_key", "pickup_point", "carrier", "iso_week"}
        with db.engine.begin() as conn:
            cfg = alembic_config(db.url)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0007")
        assert not TABLES & set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()
