"""Audience counts on PostgreSQL with 1,000,000 customers (target: <= 1 s per count).

Loads, in a fresh schema, N customers (default 1M) with traits, an activity row each,
push subscriptions (10 %) and a consent ledger (marketing on e-mail 50 %, 5 % of those
withdrawn again, push 20 %, SMS 30 %; loyalty e-mail 25 %) with `generate_series` in the
server, then times `hub.audiences.count` (one SQL query: matched + reachable per channel)
for three filters:

  1. the issue's example: Polish, individual, >= 3 parcels in 90 days, marketing consent on
     e-mail or push, not clicked in 60 days;
  2. loyalty: tier gold or silver, RFM recency >= 4, last delivery at a pickup point;
  3. broad: every Polish customer (~70 %), the worst case for the per-channel consent probes.

Each count runs once cold and then 5 times; the median and the worst are printed. Then the
example's members are streamed as a campaign reads them (`hub.audiences.members`).

Run: `.venv/bin/python bench/audience.py [--customers 1000000] [--keep | --schema NAME]`
(HUB_BENCH_PG overrides the server URL; about 2 minutes to load 1M).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub import audiences  # noqa: E402
from hub.audience_filter import parse_filter  # noqa: E402
from hub.db import Database  # noqa: E402
from hub.migrate import upgrade  # noqa: E402

PG = os.environ.get("HUB_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

FILTERS: dict[str, tuple[str, dict[str, Any]]] = {
    "issue example": ("marketing", {"all": [
        {"field": "locale", "op": "eq", "value": "pl"},
        {"field": "segment", "op": "eq", "value": "individual"},
        {"field": "activity.parcels_90d", "op": "gte", "value": 3},
        {"consent": {"purpose": "marketing", "channels": ["email", "push"], "any": True}},
        {"field": "activity.last_click_at", "op": "not_within_days", "value": 60}]}),
    "loyalty gold/silver, recent, pickup": ("loyalty", {"all": [
        {"field": "traits.tier", "op": "in", "value": ["gold", "silver"]},
        {"field": "activity.rfm_recency", "op": "gte", "value": 4},
        {"field": "activity.last_delivery_method", "op": "eq", "value": "pickup_point"}]}),
    "broad: every Polish customer": ("marketing", {
        "field": "locale", "op": "eq", "value": "pl"}),
}

# Columns are computed from g (1..N) with cheap arithmetic, so the data is the same each run.
CUSTOMERS = """
INSERT INTO customers (id, tenant, external_id, name, phone, email, phone_verified,
                       email_verified, locale, tone, time_zone, segment, preferences, traits,
                       created_at, updated_at)
SELECT g, 'default', 'c-' || g, NULL,
       CASE WHEN g % 10 < 9 THEN '+4850' || lpad((g % 10000000)::text, 7, '0') END,
       CASE WHEN g % 5 < 4 THEN 'c' || g || '@example.pl' END,
       g % 10 < 7, g % 5 < 3,
       (ARRAY['pl','pl','pl','pl','pl','pl','pl','pl','pl','pl','pl','pl','pl','pl',
              'en','en','en','uk','uk','de'])[g % 20 + 1],
       'formal', 'Europe/Warsaw',
       CASE WHEN g % 20 < 17 THEN 'individual' ELSE 'business' END,
       '{}'::json,
       jsonb_build_object('tier', (ARRAY['bronze','silver','gold'])[g % 3 + 1],
                         'points', (g::bigint * 7919) % 5000, 'city', 'Warszawa'),
       now() - interval '400 days', now()
FROM generate_series(1, :n) g
"""
ACTIVITY = """
INSERT INTO customer_activity (customer_pk, tenant, last_parcel_at, parcels_30d, parcels_90d,
       parcels_365d, last_delivery_method, last_click_at, conversions_count,
       conversions_value, rfm_recency, rfm_frequency, rfm_monetary, rfm, consent_mask,
       updated_at)
SELECT g, 'default', now() - ((g * 31) % 200) * interval '1 day',
       (g * 13) % 3, (g * 13) % 7, (g * 13) % 20,
       CASE WHEN g % 3 = 0 THEN 'courier' ELSE 'pickup_point' END,
       CASE WHEN g % 5 = 0 THEN now() - ((g * 17) % 120) * interval '1 day' END,
       0, 0, 1 + (g / 7) % 5, 1 + (g * 13) % 5, 1, '111', coalesce(m.mask, 0), now()
FROM generate_series(1, :n) g LEFT JOIN masks m ON m.customer_id = 'c-' || g
"""
CONSENTS = """
INSERT INTO consents (tenant, customer_id, purpose, channel, action, legal_basis, source,
                      recorded_at)
SELECT 'default', 'c-' || g, :purpose, :channel, :action, 'consent', 'checkout', now()
FROM generate_series(1, :n) g WHERE g % 100 < :percent AND g % 100 >= :start
"""
PUSH = """
INSERT INTO push_subscriptions (tenant, customer_pk, endpoint, p256dh, auth, active,
                                created_at, updated_at)
SELECT 'default', g, 'https://push.example/' || g, 'p256dh-key-bench', 'auth-key', true,
       now(), now()
FROM generate_series(1, :n) g WHERE g % 10 = 0
"""
# The ledger written straight into the table (not through hub.consents.record_consent),
# so the consent bits are derived here the same way: per (purpose, channel) the row with
# the highest id wins; max(id * 2 + granted) keeps that row's action in its lowest bit.
MASKS = """
CREATE TEMPORARY TABLE masks AS
SELECT customer_id, sum(CASE WHEN last % 2 = 1 THEN
           (1 << ((CASE purpose WHEN 'marketing' THEN 0 ELSE 1 END) * 3
                  + (CASE channel WHEN 'sms' THEN 0 WHEN 'email' THEN 1 ELSE 2 END)))
           ELSE 0 END) AS mask
FROM (SELECT customer_id, purpose, channel,
             max(id * 2 + CASE WHEN action = 'granted' THEN 1 ELSE 0 END) AS last
      FROM consents GROUP BY customer_id, purpose, channel) l
GROUP BY customer_id
"""
# (purpose, channel, action, from percent, to percent): withdrawals come after grants
LEDGER = [("marketing", "email", "granted", 0, 50), ("marketing", "push", "granted", 0, 20),
          ("marketing", "sms", "granted", 30, 60), ("loyalty", "email", "granted", 0, 25),
          ("marketing", "email", "withdrawn", 45, 50)]


def load(url: str, n: int) -> None:
    engine = create_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(CUSTOMERS), {"n": n})
        conn.execute(text("SELECT setval(pg_get_serial_sequence('customers', 'id'), :n)"),
                     {"n": n})
        for purpose, channel, action, start, percent in LEDGER:
            conn.execute(text(CONSENTS), {"n": n, "purpose": purpose, "channel": channel,
                                          "action": action, "start": start, "percent": percent})
        conn.execute(text(MASKS))  # written once with the row: no dead tuples to scan past
        conn.execute(text(ACTIVITY), {"n": n})
        conn.execute(text(PUSH), {"n": n})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        consents = conn.execute(text("SELECT count(*) FROM consents")).scalar_one()
    engine.dispose()
    print(f"loaded {n:,} customers, {consents:,} consent rows in "
          f"{time.perf_counter() - started:.1f} s")


def time_counts(db: Database, runs: int) -> None:
    print(f"\n{'filter':40} {'matched':>9} {'email':>8} {'sms':>8} {'push':>8} "
          f"{'cold':>7} {'median':>7} {'worst':>7}")
    for name, (purpose, raw) in FILTERS.items():
        audience = parse_filter(raw)
        times = []
        for _ in range(runs + 1):
            with db.sessions() as session:
                started = time.perf_counter()
                counted = audiences.count(session, "default", audience, purpose)
                times.append(time.perf_counter() - started)
        cold, warm = times[0], times[1:]
        r = counted.reachable
        print(f"{name:40} {counted.matched:>9,} {r['email']:>8,} {r['sms']:>8,} "
              f"{r['push']:>8,} {cold:>6.3f}s {statistics.median(warm):>6.3f}s "
              f"{max(warm):>6.3f}s")


def time_members(db: Database) -> None:
    """Streams the issue example's members the way a campaign reads them."""
    with db.transaction() as session:
        audience = audiences.create(session, "default", "bench", "issue example",
                                    parse_filter(FILTERS["issue example"][1]))
    with db.sessions() as session:
        started = time.perf_counter()
        streamed = sum(1 for _ in audiences.members(session, "default", audience.id))
        took = time.perf_counter() - started
    print(f"\nmembers of the issue example: {streamed:,} customer ids in {took:.2f} s "
          f"({audiences.MEMBER_CHUNK:,} per query)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    parser.add_argument("--schema", help="count in this kept schema instead of loading one")
    args = parser.parse_args()
    schema = args.schema or f"bench_audience_{secrets.token_hex(4)}"
    admin = create_engine(PG)
    if not args.schema:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{PG}?options=-csearch_path%3D{schema}"
    db = Database(url)
    try:
        if not args.schema:
            upgrade(db)
            load(url, args.customers)
        time_counts(db, args.runs)
        time_members(db)
    finally:
        db.dispose()
        if args.keep or args.schema:
            print(f"kept schema {schema}")
        else:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()
