"""End to end: event accepted over HTTP → SMS at a loopback Twilio (the real SDK, the fake's
wire format), with the hub running as real processes.

Measures, for each provider latency (`--provider-latency-ms`, default 1 and 200: the fake
holds every answer that long, like a provider round trip):
  * the maximum throughput (a flood of batches of 500), the maximum of producers posting one
    event per request (8 clients), and at 50 % and 100 % of the latter the latency from the
    202 to the provider receiving the message (p50/p95/p99), in embedded mode (SQLite,
    `hub serve` with its worker thread) and scale-out mode (PostgreSQL, Redis counters,
    RabbitMQ, `hub serve` + `hub worker`);
  * the ceiling: a bare loop in one process that renders the same messages and POSTs them
    with the Twilio SDK to the same fake; ratio = hub throughput per worker process / ceiling;
  * 1 vs 2 worker processes on RabbitMQ.
Then, at 1 ms:
  * a provider limited to 10 msg/s (HUB_TWILIO_MPS=10): the rate the provider observed and
    how many messages were lost (embedded; with 2 scale-out workers sharing Redis too);
  * an urgent notice posted behind a marketing backlog (10,000; --quick 1,000): how long until
    it reaches the provider (bounded: printed as "> N s" if it did not within --backlog-wait);
  * the cost per event with 10k and with 1M customers in the store, and the workers' RSS.

Independent of the clock: the hub under test runs with a bench policy (the default one with
quiet hours off) in UTC, and every event's dates are computed from now, so a run gives the
same work at any hour. Runs are sized from a short probe so that each takes about
--run-seconds even when the hub is slow.

Run: `.venv/bin/python bench/e2e.py [--quick]` (about 7 minutes; --quick: smaller runs,
flood only, about 2).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.twilio import FakeTwilio  # noqa: E402
from tests.helpers import free_port  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"


# --- the loopback provider, in its own process so it does not share the hub's GIL ----------

def _provider_main(conn: Any) -> None:
    arrivals: list[tuple[str, float]] = []
    lock = threading.Lock()

    class Timed(FakeTwilio):
        def handle(self, req: Any) -> Any:
            # the request arrived `latency` ago: the fake holds the answer, not the arrival
            arrived = time.time() - self.latency
            reply = super().handle(req)
            with lock:
                arrivals.append((req.form().get("To", ""), arrived))
            return reply

    with Timed() as fake:
        conn.send((fake.url, fake.account_sid, fake.auth_token))
        while True:
            command = conn.recv()
            if command == "stop":
                return
            if isinstance(command, tuple) and command[0] == "latency":
                fake.latency = command[1]
                conn.send("ok")
                continue
            with lock:
                conn.send(list(arrivals))
                arrivals.clear()


class Provider:
    """A FakeTwilio in a child process; `drain()` returns (phone, arrival time) pairs."""

    def __init__(self) -> None:
        self._conn, child = mp.Pipe()
        self._proc = mp.get_context("spawn").Process(target=_provider_main, args=(child,),
                                                     daemon=True)
        self._proc.start()
        self.url, self.sid, self.token = self._conn.recv()
        self.latency_ms = 0.0

    def set_latency(self, ms: float) -> None:
        """Every later answer is held `ms` milliseconds (a provider's round trip)."""
        self._conn.send(("latency", ms / 1000))
        self._conn.recv()
        self.latency_ms = ms

    def drain(self) -> list[tuple[str, float]]:
        self._conn.send("drain")
        return self._conn.recv()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self._conn.send("stop")
        self._proc.join(timeout=10)


# --- the hub as processes ------------------------------------------------------------------


def _pg_schema() -> str:
    from sqlalchemy import create_engine, text

    schema = f"bench_e2e_{secrets.token_hex(4)}"
    admin = create_engine(PG)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    return f"{PG}?options=-csearch_path%3D{schema}"


def bench_policy_file(directory: str) -> str:
    """The packaged throttling policy with quiet hours off, written into `directory`: the
    bench's notices then go out at any hour instead of waiting for 08:00 Warsaw time."""
    from throttling import load_policy
    from throttling.policy import DEFAULT_POLICY_FILE

    text = DEFAULT_POLICY_FILE.read_text("utf-8")
    quiet = "[quiet_hours]\nenabled = true"
    if quiet not in text:
        raise RuntimeError(f"{DEFAULT_POLICY_FILE} changed: cannot turn its quiet hours off")
    path = Path(directory) / "bench-policy.toml"
    path.write_text(text.replace(quiet, "[quiet_hours]\nenabled = false"), "utf-8")
    if load_policy(path).quiet_hours.enabled:
        raise RuntimeError("the bench policy still has quiet hours")
    return str(path)


@dataclass
class Topology:
    name: str
    database_url: str
    broker: str | None = None
    worker_processes: int = 0  # 0: the embedded worker inside `hub serve`
    redis_counters: bool = False
    env: dict[str, str] = field(default_factory=dict)  # more HUB_* settings for this run

    @property
    def workers(self) -> int:
        return max(1, self.worker_processes)


def _hub_env(top: Topology, provider: Provider, policy: str) -> dict[str, str]:
    env = {**os.environ, "HUB_DATABASE_URL": top.database_url, "HUB_LOG_LEVEL": "ERROR",
           "TZ": "UTC", "HUB_THROTTLE_POLICY_FILE": policy,
           "HUB_TWILIO_ACCOUNT_SID": provider.sid, "HUB_TWILIO_AUTH_TOKEN": provider.token,
           "HUB_TWILIO_FROM": "+48500000000", "HUB_TWILIO_API_BASE_URL": provider.url,
           # the default poll (0.2 s): new work wakes the worker (embedded) or the relay
           # (PostgreSQL NOTIFY); a 20 ms poll burnt a quarter of a core while idle
           "HUB_WORKER_BATCH": "50",
           "HUB_BROKER_QUEUE": f"bench-{secrets.token_hex(3)}",
           "HUB_THROTTLE_REDIS_PREFIX": f"bench:{secrets.token_hex(3)}:"}
    env.pop("HUB_BROKER_URL", None)
    if top.broker:
        env["HUB_BROKER_URL"] = top.broker
    if top.redis_counters:
        env |= {"HUB_THROTTLE_BACKEND": "redis", "HUB_REDIS_URL": "redis://127.0.0.1:6379/3",
                "HUB_RATE_LIMIT_REDIS_PREFIX": f"bench:rate:{secrets.token_hex(3)}:"}
    return env | top.env


@contextmanager
def running_hub(top: Topology, provider: Provider, policy: str, customers: int = 0,
                marketing: bool = False
                ) -> Iterator[tuple[str, str, list[subprocess.Popen[bytes]]]]:
    """Starts the topology; yields (base url, API key, worker processes)."""
    env = _hub_env(top, provider, policy)
    hub = [sys.executable, "-m", "hub"]
    subprocess.run([*hub, "migrate"], env=env, check=True, capture_output=True)
    if customers:
        _fill_customers(top.database_url, customers, marketing)
    token = subprocess.run([*hub, "keys", "create", "--producer", "bench", "--scope", "admin"],
                           env=env, check=True, capture_output=True, text=True).stdout.split()[-1]
    port = free_port()
    serve = [*hub, "serve", "--port", str(port)]
    if top.worker_processes and not top.broker:
        serve.append("--no-worker")
    procs = [subprocess.Popen(serve, env=env)]
    workers = []
    if top.worker_processes:
        for _ in range(top.worker_processes):
            workers.append(subprocess.Popen([*hub, "worker"], env=env))
    procs += workers
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base)
        yield base, token, workers or procs[:1]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        _drop_pg_schema(top.database_url)


def _drop_pg_schema(url: str) -> None:
    """Drops the schema `_pg_schema` made for a run (each run's tables are its own)."""
    if "search_path%3D" not in url:
        return
    from sqlalchemy import create_engine, text

    admin = create_engine(PG)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {url.rsplit('%3D', 1)[1]} CASCADE"))
    admin.dispose()


def _fill_customers(url: str, count: int, marketing: bool = False) -> None:
    """`count` customers with a phone each, inserted by the database itself; with
    `marketing`, the phone is verified and marketing SMS consent granted (so a campaign
    reaches them)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    now = "CURRENT_TIMESTAMP"
    verified = "true" if marketing else "false"
    select = (f"SELECT 'cust-' || g, '+4860' || (1000000 + g), 'pl', 'formal', 'Europe/Warsaw', "
              f"'individual', '{{}}', {verified}, false, {now}, {now}")
    columns = ("external_id, phone, locale, tone, time_zone, segment, preferences, "
               "phone_verified, email_verified, created_at, updated_at")
    consent = ("SELECT 'cust-' || g, 'marketing', 'sms', 'granted', 'consent', 'api', 'bench-1', "
               f"{now}")
    consent_columns = ("customer_id, purpose, channel, action, legal_basis, source, "
                       "text_version, recorded_at")
    inserts = [(columns, "customers", select)]
    if marketing:
        inserts.append((consent_columns, "consents", consent))
    with engine.begin() as conn:
        for cols, table, rows in inserts:
            if engine.dialect.name == "sqlite":
                conn.execute(text(
                    f"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s "
                    f"WHERE g < {count}) INSERT INTO {table} ({cols}) {rows} FROM s"))
            else:
                conn.execute(text(f"INSERT INTO {table} ({cols}) {rows} "
                                  f"FROM generate_series(1, {count}) g"))
    engine.dispose()


def wait_healthy(base: str) -> None:
    """Until a just-started `hub serve` answers /healthz (at most about 30 s)."""
    for _ in range(300):
        try:
            httpx.get(base + "/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)


def rss_mb(pids: list[int]) -> float:
    """Resident memory of the given processes and their children, in MB."""
    total = 0
    pids = list(pids)
    for pid in list(pids):
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            pids += [int(c) for c in children]
        except OSError:
            pass
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


# --- load ----------------------------------------------------------------------------------

WARSAW = "Europe/Warsaw"


def _now_iso(offset: timedelta = timedelta()) -> str:
    """Now (plus `offset`) in Warsaw time: events are always fresh, whatever the date."""
    return (datetime.now(ZoneInfo(WARSAW)) + offset).isoformat(timespec="seconds")


def _event(n: int, tag: str, customers: int) -> dict[str, Any]:
    """A pickup notice occurring now, its deadline two days ahead (not urgent)."""
    customer = f"cust-{(n * 7919) % customers + 1}" if customers else f"{tag}-c{n}"
    phone = f"+4869{n:07d}"
    return {"event_id": f"{tag}-{n}", "type": "parcel.ready_for_pickup",
            "occurred_at": _now_iso(),
            "customer": {"id": customer, "phone": phone, "locale": "pl"},
            "parcel": {"tracking_number": f"PL{tag.upper()}{n:08d}",
                       "pickup_point": {"id": "WAW123M", "name": "Paczkomat WAW123M",
                                        "code": "482913",
                                        "deadline": _now_iso(timedelta(days=2))}}}


def _campaign(n: int, tag: str) -> dict[str, Any]:
    """A marketing message to stored customer `cust-{n+1}` (consent and phone on file)."""
    return {"event_id": f"{tag}-{n}", "type": "marketing.campaign", "occurred_at": _now_iso(),
            "customer": {"id": f"cust-{n + 1}"},
            "data": {"title": "Black week", "body": "-20% on lockers"}}


def _urgent(tag: str) -> dict[str, Any]:
    """Out for delivery: an urgent transactional notice to a new customer."""
    return {"event_id": f"{tag}-urgent", "type": "parcel.out_for_delivery",
            "occurred_at": _now_iso(),
            "customer": {"id": f"{tag}-urgent", "phone": "+48699999999", "locale": "pl"},
            "parcel": {"tracking_number": f"PL{tag.upper()}URGENT"}}


def _await(provider: Provider, phones: set[str], timeout: float,
           strict: bool = True) -> dict[str, float]:
    """First arrival time of each phone; raises (or, not `strict`, returns what came) if some
    never arrived within `timeout`."""
    seen: dict[str, float] = {}
    deadline = time.time() + timeout
    while time.time() < deadline and not phones <= seen.keys():
        for phone, at in provider.drain():
            seen.setdefault(phone, at)
        time.sleep(0.05)
    missing = len(phones - seen.keys())
    if missing and strict:
        raise RuntimeError(f"{missing} messages never reached the provider")
    return seen


def _post_batches(base: str, token: str, events: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                      timeout=120) as http:
        for i in range(0, len(events), 500):
            reply = http.post("/v1/events/batch", json={"events": events[i:i + 500]})
            reply.raise_for_status()


def flood(base: str, token: str, provider: Provider, count: int, tag: str,
          customers: int = 0) -> float:
    """Maximum throughput: `count` events in batches as fast as accepted; msgs/s."""
    events = [_event(n, tag, customers) for n in range(count)]
    started = time.time()
    _post_batches(base, token, events)
    seen = _await(provider, {e["customer"]["phone"] for e in events}, timeout=900)
    return count / (max(seen.values()) - started)


def single_flood(base: str, token: str, provider: Provider, count: int, tag: str) -> float:
    """Maximum throughput of producers posting one event per request (8 clients, each
    posting as soon as its last request was answered); msgs/s."""
    clients = 8
    started = time.time()

    def run(slot: int) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as http:
            for n in range(slot, count, clients):
                http.post("/v1/events", content=json.dumps(_event(n, tag, 0)),
                          headers={"content-type": "application/json"}).raise_for_status()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = _await(provider, {_event(n, tag, 0)["customer"]["phone"] for n in range(count)},
                  timeout=900)
    return count / (max(seen.values()) - started)


def paced(base: str, token: str, provider: Provider, rate: float, seconds: float,
          tag: str) -> tuple[float, list[float]]:
    """Open-loop load at `rate` events/s; returns (delivered msgs/s, latencies in ms)."""
    count = max(20, int(rate * seconds))
    accepted: dict[str, float] = {}
    lock = threading.Lock()
    start = time.time() + 0.2
    clients = 8

    def run(slot: int) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as http:
            for n in range(slot, count, clients):
                delay = start + n / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                body = _event(n, tag, 0)
                http.post("/v1/events", content=json.dumps(body),
                          headers={"content-type": "application/json"}).raise_for_status()
                with lock:
                    accepted[body["customer"]["phone"]] = time.time()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = _await(provider, set(accepted), timeout=900)
    latencies = sorted((seen[p] - accepted[p]) * 1000 for p in accepted)
    return count / (max(seen.values()) - start), latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def ceiling(provider: Provider, count: int, max_seconds: float) -> float:
    """A bare loop: render the same SMS and POST it with the Twilio SDK; msgs/s (stops
    after `max_seconds` at a slow provider)."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    from hub.runtime import build_renderer
    from hub.settings import Settings
    from templates import RenderRequest

    renderer = build_renderer(Settings())
    http = TwilioHttpClient()
    client = Client(provider.sid, provider.token, http_client=http)
    client.api.base_url = provider.url
    started = time.perf_counter()
    done = 0
    while done < count and (done < 5 or time.perf_counter() - started < max_seconds):
        payload = _event(done, "ceil", 0)
        context = renderer.context(payload, {"customer_id": payload["customer"]["id"]},
                                   now=datetime.now(UTC), channel="sms", category="transactional")
        rendered = renderer.render(RenderRequest("parcel.ready_for_pickup", "sms", ("pl", "en"),
                                                 "formal", context))
        client.messages.create(to=payload["customer"]["phone"], from_="+48500000000",
                               body=rendered.parts["body"])
        done += 1
    elapsed = time.perf_counter() - started
    provider.drain()
    return done / elapsed


# --- the runs ------------------------------------------------------------------------------

@dataclass
class Plan:
    """How big each run is (--quick: smaller, flood only)."""

    quick: bool
    max_events: int
    paced_seconds: float
    run_seconds: float
    rate_events: int
    backlog: int
    backlog_wait: float
    policy: str
    tmp: str


def _tag(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(2)}"


def throughput(provider: Provider, plan: Plan) -> tuple[list[tuple[str, ...]], dict[int, float]]:
    """The ceiling and every topology at the provider's current latency: table rows, and the
    flood rate by scale-out worker count."""
    latency = f"{provider.latency_ms:g} ms"
    bare = ceiling(provider, plan.max_events // 2, plan.run_seconds)
    rows = [(latency, "ceiling: render + SDK POST loop", "1 process", f"{bare:,.1f}", "", "",
             "", "1.00")]
    topologies = [Topology("embedded (SQLite, worker thread)", f"sqlite:///{plan.tmp}/"
                           f"{_tag('e')}.db"),
                  Topology("scale-out (PG, RabbitMQ, Redis)", _pg_schema(), AMQP, 1, True)]
    if not plan.quick:
        topologies.append(Topology("scale-out (PG, RabbitMQ, Redis)", _pg_schema(), AMQP, 2, True))
    by_workers: dict[int, float] = {}
    for top in topologies:
        with running_hub(top, provider, plan.policy) as (base, token, _procs):
            probe_events = 20 if plan.quick else 30
            probe = flood(base, token, provider, probe_events, _tag("w"))  # warm-up, first rate
            count = max(probe_events, min(plan.max_events, int(probe * plan.run_seconds)))
            peak = flood(base, token, provider, count, _tag("f"))
            if top.broker:
                by_workers[top.worker_processes] = peak
            rows.append((latency, top.name, f"{top.workers} proc, flood ({count} events "
                         "in batches of 500)", f"{peak:,.1f}", "", "", "",
                         f"{peak / top.workers / bare:.2f}"))
            if plan.quick:
                continue
            # Latency under load is measured with single-event posts, so "max load" is what
            # producers posting one event per request reach, measured the same way.
            singles = min(count, max(probe_events, int(peak * plan.run_seconds / 2)))
            single = single_flood(base, token, provider, singles, _tag("s"))
            rows.append((latency, top.name, f"{top.workers} proc, flood ({singles} single "
                         "posts, 8 clients)", f"{single:,.1f}", "", "", "",
                         f"{single / top.workers / bare:.2f}"))
            for share in (0.5, 1.0):
                got, lat = paced(base, token, provider, single * share, plan.paced_seconds,
                                 _tag("p"))
                rows.append((latency, top.name, f"{top.workers} proc, {int(share * 100)} % of "
                             "single-post max", f"{got:,.1f}", f"{pct(lat, 50):.0f}",
                             f"{pct(lat, 95):.0f}", f"{pct(lat, 99):.0f}",
                             f"{got / top.workers / bare:.2f}"))
    return rows, by_workers


def rate_limited(provider: Provider, plan: Plan) -> list[tuple[str, ...]]:
    """HUB_TWILIO_MPS=10: what the provider observed, and how many messages were lost."""
    limit = {"HUB_TWILIO_MPS": "10"}
    topologies = [Topology("embedded", f"sqlite:///{plan.tmp}/{_tag('r')}.db", env=limit)]
    if not plan.quick:  # two processes share the bucket through Redis
        topologies.append(Topology("scale-out, 2 workers", _pg_schema(), AMQP, 2, True, limit))
    rows = []
    for top in topologies:
        with running_hub(top, provider, plan.policy) as (base, token, _procs):
            events = [_event(n, _tag("r"), 0) for n in range(plan.rate_events)]
            _post_batches(base, token, events)
            phones = {e["customer"]["phone"] for e in events}
            seen = _await(provider, phones, timeout=plan.rate_events / 10 * 3 + 30, strict=False)
        times = sorted(seen.values())
        observed = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        busiest = max(sum(1 for x in times if t <= x < t + 1) for t in times) if times else 0
        rows.append((top.name, "10", str(len(events)), f"{observed:.2f}", str(busiest),
                     str(len(phones - seen.keys()))))
    return rows


def backlog_run(provider: Provider, plan: Plan) -> str:
    """An urgent notice posted behind `plan.backlog` marketing messages: seconds from its 202
    until it reaches the provider (bounded by plan.backlog_wait)."""
    top = Topology("embedded", f"sqlite:///{plan.tmp}/{_tag('b')}.db")
    tag = _tag("b")
    with running_hub(top, provider, plan.policy, customers=plan.backlog, marketing=True
                     ) as (base, token, _procs):
        _post_batches(base, token, [_campaign(n, tag) for n in range(plan.backlog)])
        urgent = _urgent(tag)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as http:
            http.post("/v1/events", json=urgent).raise_for_status()
        posted = time.time()
        seen = _await(provider, {urgent["customer"]["phone"]}, plan.backlog_wait, strict=False)
        before = sum(1 for phone, at in seen.items() if at <= seen.get("+48699999999", 1e18)
                     and phone != "+48699999999")
    if "+48699999999" in seen:
        return (f"urgent notice behind {plan.backlog:,} marketing messages: reached the provider "
                f"{seen['+48699999999'] - posted:.2f} s after its 202 ({before:,} marketing "
                f"messages went out before it)")
    return (f"urgent notice behind {plan.backlog:,} marketing messages: NOT at the provider "
            f"> {plan.backlog_wait:.0f} s after its 202 ({before:,} marketing messages went out "
            f"meanwhile); stopped waiting")


def store_size(provider: Provider, plan: Plan) -> list[tuple[int, float, float]]:
    """Cost per event and worker RSS with 10k and 1M customers in the store (1 worker)."""
    cost = []
    for size in (10_000, 1_000_000):
        top = Topology(f"scale-out, {size:,} customers", _pg_schema(), AMQP, 1, True)
        with running_hub(top, provider, plan.policy, customers=size) as (base, token, procs):
            flood(base, token, provider, 100, _tag("w"), size)
            peak = flood(base, token, provider, plan.max_events, _tag("c"), size)
            cost.append((size, 1000 / peak, rss_mb([p.pid for p in procs])))
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--provider-latency-ms", default="1,200",
                        help="comma-separated provider latencies to run (default 1,200)")
    parser.add_argument("--run-seconds", type=float, default=None,
                        help="size each flood to take about this long (default 20, quick 5)")
    parser.add_argument("--backlog-wait", type=float, default=None,
                        help="longest wait for the urgent notice (default 180 s, quick 15 s)")
    args = parser.parse_args()
    latencies = [float(x) for x in args.provider_latency_ms.split(",") if x.strip()]
    provider = Provider()
    with tempfile.TemporaryDirectory() as tmp:
        plan = Plan(args.quick, 300 if args.quick else 1500, 5 if args.quick else 15,
                    args.run_seconds or (5 if args.quick else 20), 30 if args.quick else 100,
                    1_000 if args.quick else 10_000,
                    args.backlog_wait or (15 if args.quick else 180), bench_policy_file(tmp), tmp)
        try:
            _report(provider, plan, latencies)
        finally:
            provider.stop()


def _report(provider: Provider, plan: Plan, latencies: list[float]) -> None:
    """Runs everything and prints each table as soon as it is measured."""
    for ms in latencies:
        provider.set_latency(ms)
        rows, by_workers = throughput(provider, plan)
        _table([("provider", "topology", "load", "msgs/s", "p50 ms", "p95 ms", "p99 ms",
                 "per proc / ceiling"), *rows])
        if len(by_workers) == 2:
            print(f"1 → 2 worker processes on RabbitMQ at {ms:g} ms: {by_workers[1]:,.1f} → "
                  f"{by_workers[2]:,.1f} msgs/s = {by_workers[2] / by_workers[1]:.2f}×")
        print(flush=True)
    provider.set_latency(1)
    _table([("rate-limited run (1 ms)", "limit msg/s", "messages", "observed msg/s",
             "busiest 1 s", "lost"), *rate_limited(provider, plan)])
    print(flush=True)
    print(backlog_run(provider, plan), flush=True)
    if plan.quick:
        print("\nstore size (10k vs 1M customers): skipped in --quick")
        return
    cost = store_size(provider, plan)
    print()
    _table([("customers in store", "ms per event", "worker RSS MB")]
           + [(f"{s:,}", f"{c:.2f}", f"{r:.0f}") for s, c, r in cost])
    print(f"cost 1M / 10k = {cost[1][1] / cost[0][1]:.2f}×")


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
