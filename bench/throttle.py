"""Throttling decisions per second for each counter backend, with 1k and 1M tracked customers.

Each run fills the backend with one live counter per customer (a marketing SMS sent two
days ago, still inside the weekly window), then times `PolicyLimiter.check` from one
process on random customers: half marketing SMS (three caps), half parcel statuses
(burst guard + parcel ledger). Quiet hours are off and cap limits out of reach, so every
decision does the full check-and-take work. Five rounds per size; the median is printed
(the machine may be shared and noisy).

    python bench/throttle.py [--backends sqlite,postgresql,redis] [--sizes 1000,1000000]
                             [--decisions 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402

from hub import migrate  # noqa: E402
from hub.db import Database  # noqa: E402
from throttling import (  # noqa: E402
    CounterStore,
    PolicyLimiter,
    ThrottleRequest,
    Verdict,
    load_policy,
)
from throttling.backends.redis import RedisCounterStore  # noqa: E402
from throttling.backends.sql import SqlCounterStore  # noqa: E402
from throttling.policy import QuietHoursRule  # noqa: E402

PG_BASE = os.environ.get("HUB_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HUB_TEST_REDIS", "redis://127.0.0.1:6379/0")
SCOPE = "marketing_sms_week"
CHUNK = 50_000
SQLITE_SYNC = os.environ.get("HUB_THROTTLE_SQLITE_SYNCHRONOUS", "NORMAL")


def customer(i: int) -> str:
    return f"bench-{i:07d}"


def seeded_rows(size: int, at_ms: int) -> Iterator[tuple[str, str, int]]:
    for i in range(size):
        yield f"{customer(i)}|{SCOPE}", f"seed-{i}|sms", at_ms


@contextmanager
def sqlite_store(size: int, at_ms: int) -> Iterator[CounterStore]:
    with tempfile.TemporaryDirectory(prefix="throttle-bench-") as tmp:
        db = Database(f"sqlite:///{tmp}/bench.db")
        migrate.upgrade(db)
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("PRAGMA synchronous=OFF")  # only for the bulk load
            cur.execute("BEGIN")
            cur.executemany("INSERT INTO throttle_hits (scope_key, member, at_ms) VALUES (?,?,?)",
                            seeded_rows(size, at_ms))
            cur.execute("COMMIT")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("ANALYZE")
        finally:
            raw.close()
        db.engine.dispose()  # new connections get the hub's pragmas again
        # as the hub runs it (hub/runtime.py): counters on their own pool, fsync relaxed
        yield SqlCounterStore(db.engine, sqlite_synchronous=SQLITE_SYNC)
        db.dispose()


@contextmanager
def postgresql_store(size: int, at_ms: int) -> Iterator[CounterStore]:
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_BASE)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    db = Database(f"{PG_BASE}?options=-csearch_path%3D{schema}")
    try:
        migrate.upgrade(db)
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            with cur.copy("COPY throttle_hits (scope_key, member, at_ms) FROM STDIN") as copy:
                buffer = io.StringIO()
                for n, row in enumerate(seeded_rows(size, at_ms), 1):
                    buffer.write(f"{row[0]}\t{row[1]}\t{row[2]}\n")
                    if n % CHUNK == 0:
                        copy.write(buffer.getvalue())
                        buffer = io.StringIO()
                copy.write(buffer.getvalue())
            cur.execute("ANALYZE throttle_hits")
            raw.commit()
        finally:
            raw.close()
        yield SqlCounterStore(db.engine)
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def redis_store(size: int, at_ms: int) -> Iterator[CounterStore]:
    prefix = f"bench:throttle:{secrets.token_hex(4)}:"
    store = RedisCounterStore.from_url(REDIS_URL, prefix)
    client = store.client
    ttl = 7 * 86400 * 1000
    try:
        # Server-side loop: one script call creates CHUNK counters (the wire is the bottleneck).
        fill = client.register_script(_FILL)
        for start in range(0, size, CHUNK):
            fill(args=[prefix, SCOPE, start, min(size, start + CHUNK) - 1, at_ms, ttl])
        yield store
    finally:
        cursor = 0
        while True:
            cursor, keys = client.scan(cursor, match=f"{prefix}*", count=10_000)
            if keys:
                client.unlink(*keys)
            if cursor == 0:
                break
        store.close()


_FILL = """
local prefix, scope, first, last, at, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]),
  tonumber(ARGV[4]), ARGV[5], ARGV[6]
for i = first, last do
  local who = string.format('bench-%07d', i)
  local key = prefix .. '{' .. who .. '}:c:' .. who .. '|' .. scope
  redis.call('ZADD', key, at, 'seed-' .. i .. '|sms')
  redis.call('PEXPIRE', key, ttl)
end
return last - first + 1
"""


BACKENDS: dict[str, Callable[[int, int], Iterator[CounterStore]]] = {
    "sqlite": sqlite_store,  # type: ignore[dict-item]
    "postgresql": postgresql_store,  # type: ignore[dict-item]
    "redis": redis_store,  # type: ignore[dict-item]
}


def requests(size: int, count: int, now: datetime, tag: str = "") -> list[ThrottleRequest]:
    rng = random.Random(f"{size}{tag}")
    made = []
    for n in range(count):
        who = customer(rng.randrange(size))
        at = now + timedelta(milliseconds=n)
        if n % 2:
            made.append(ThrottleRequest(who, "sms", "marketing", "marketing.campaign", at, at,
                                        event_ref=f"m{tag}{n}"))
        else:
            made.append(ThrottleRequest(who, "sms", "transactional", "parcel.in_transit", at, at,
                                        tracking_number=f"T{tag}{n}", status_rank=20,
                                        event_ref=f"p{tag}{n}"))
    return made


def run(backend: str, size: int, count: int, rounds: int) -> tuple[float, float, float]:
    """(median decisions per second over `rounds`, seconds spent loading, share allowed)."""
    now = datetime.now(UTC)
    seed_at = int((now - timedelta(days=2)).timestamp() * 1000)
    # The packaged caps with limits too high to reach: every decision takes the full (and
    # costliest) check-and-take path, so the sizes compare the same work.
    policy = load_policy()
    caps = tuple(rule.model_copy(update={"limit": 10**9}) for rule in policy.caps)
    policy = policy.model_copy(update={"caps": caps,
                                       "quiet_hours": QuietHoursRule(enabled=False)})
    loading = time.perf_counter()
    with BACKENDS[backend](size, seed_at) as store:  # type: ignore[attr-defined]
        loaded = time.perf_counter() - loading
        limiter = PolicyLimiter(policy, store)
        for warm in requests(size, 50, now - timedelta(hours=1), "w"):
            limiter.check(warm)
        rates, allowed = [], 0
        for r in range(rounds):
            batch = requests(size, count, now + timedelta(minutes=r), f"r{r}-")
            began = time.perf_counter()
            verdicts = [limiter.check(request).verdict for request in batch]
            rates.append(count / (time.perf_counter() - began))
            allowed += verdicts.count(Verdict.ALLOW)
    return statistics.median(rates), loaded, allowed / (count * rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql,redis")
    parser.add_argument("--sizes", default="1000,1000000")
    parser.add_argument("--decisions", type=int, default=2000, help="per round")
    parser.add_argument("--rounds", type=int, default=5, help="the median round is shown")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'backend':<11}{'customers':>11}{'decisions/s':>13}{'µs/decision':>13}"
          f"{'load s':>9}{'allowed':>9}")
    for backend in args.backends.split(","):
        rates = []
        for size in sizes:
            rate, loaded, allowed = run(backend, size, args.decisions, args.rounds)
            rates.append(rate)
            print(f"{backend:<11}{size:>11,}{rate:>13,.0f}{1e6 / rate:>13.0f}{loaded:>9.1f}"
                  f"{allowed:>9.0%}", flush=True)
        if len(rates) > 1:
            print(f"{'':<11}{'cost ratio':>11}{rates[0] / rates[-1]:>13.2f}x "
                  f"({sizes[-1]:,} vs {sizes[0]:,} customers)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
