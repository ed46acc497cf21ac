"""Migration 0008 creates the follow-up timers table to match the model, and undoes it."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from hub.db import Database
from hub.migrate import alembic_config, upgrade
from hub.models import FollowupTimer


def test_0008_matches_the_model_and_downgrades(database_url: str) -> None:
    db = Database(database_url)
    try:
        upgrade(db)
        columns = {c["name"] for c in inspect(db.engine).get_columns("followup_timers")}
        assert columns == {c.name for c in FollowupTimer.__table__.columns}
        cfg = alembic_config(db.url)
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0007")
        assert "followup_timers" not in inspect(db.engine).get_table_names()
    finally:
        db.dispose()
