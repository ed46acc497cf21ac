"""What the per-batch check for published template drafts costs the engine.

Run: `.venv/bin/python bench/published_refresh.py [PostgreSQL URL]` (default: a temporary
SQLite file; on PostgreSQL it works in a schema of its own and drops it afterwards).
Times `PublishedTemplates.refresh` (the one query the engine adds to each batch's load
transaction) with nothing changed, with 1 and 100 tenants that have
published, and once after a publish (the tenant's drafts recompiled).
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text

from hub import migrate, template_versions
from hub.db import Database
from hub.published_templates import PublishedTemplates
from templates import Renderer
from templates.catalog import CATALOG_DIR

SOURCE = (CATALOG_DIR / "parcel.delivered" / "pl.j2").read_text("utf-8")


def publish(db: Database, tenant: str) -> None:
    with db.transaction() as session:
        row = template_versions.save_draft(session, tenant, "parcel.delivered:pl", SOURCE,
                                           "bench")
        template_versions.publish(session, row, "bench")


def per_call_us(fn: Callable[[], object], rounds: int = 2000) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds * 1e6


def main(url: str) -> None:
    db = Database(url)
    migrate.upgrade(db)
    published = PublishedTemplates(Renderer())

    def refresh() -> None:
        with db.transaction() as session:
            session.execute(text("SELECT 1"))
            published.refresh(session)

    def batch() -> None:  # a batch's load transaction is open anyway
        with db.transaction() as session:
            session.execute(text("SELECT 1"))

    print(f"{db.dialect}; µs per batch transaction\n")
    print(f"{'case':44} {'µs':>8}")
    print(f"{'transaction + SELECT 1 (a batch has one)':44} {per_call_us(batch):8.0f}")
    print(f"{'+ refresh, no tenant has published':44} {per_call_us(refresh):8.0f}")
    publish(db, "t0")
    refresh()
    print(f"{'+ refresh, 1 tenant, unchanged':44} {per_call_us(refresh):8.0f}")
    for n in range(1, 100):
        publish(db, f"t{n}")
    refresh()
    print(f"{'+ refresh, 100 tenants, unchanged':44} {per_call_us(refresh):8.0f}")
    start = time.perf_counter()
    publish(db, "t0")
    refresh()
    took = (time.perf_counter() - start) * 1e3
    print(f"{'publish + refresh that recompiles (ms)':44} {took:8.1f}")
    db.dispose()


def on_postgres(base: str) -> None:
    schema = f"bench_drafts_{secrets.token_hex(4)}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        main(f"{base}?options=-csearch_path%3D{schema}")
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        on_postgres(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(f"sqlite:///{Path(tmp) / 'bench.db'}")
    sys.exit(0)
