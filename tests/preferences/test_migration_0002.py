"""The preferences migration matches the models and can be undone."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from hub.db import Database
from hub.migrate import alembic_config, upgrade
from hub.models import Base


def test_upgrade_matches_models_and_downgrade_removes_tables(database_url: str) -> None:
    db = Database(database_url)
    try:
        upgrade(db)
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
        cfg = alembic_config(db.url)
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
        tables = set(inspect(db.engine).get_table_names())
        assert not {"consents", "push_subscriptions", "customer_tombstones"} & tables
        assert "phone_verified" not in {c["name"] for c in inspect(db.engine)
                                        .get_columns("customers")}
        upgrade(db)
        assert "consents" in set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()
