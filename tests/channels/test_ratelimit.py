"""Provider rate limits: one contract for the in-process and the Redis buckets (real Redis),
two processes sharing Redis, the factory, and the hub's send path honouring them."""

from __future__ import annotations

import multiprocessing as mp
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from channels.breaker import CircuitBreaker, GuardedAdapter
from channels.ratelimit import (
    ProviderRateLimiter,
    Rate,
    RateLimitTimeout,
    RateTable,
    adapter_key,
    build_rate_limiter,
    limit_key,
)
from channels.ratelimit_memory import MemoryRateLimiter
from channels.ratelimit_redis import RedisRateLimiter
from channels.twilio_sms import TwilioSmsAdapter, make_client
from hub import provider_limits
from hub.settings import Settings, get_settings
from tests.channels.conftest import twilio_settings
from tests.conftest import REDIS_URL, need_service
from tests.fakes.twilio import FakeTwilio
from tests.helpers import event

Factory = Callable[[RateTable], ProviderRateLimiter]


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    need_service("Redis", 6379)
    import redis

    prefix = f"test:rate:{secrets.token_hex(4)}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_limiter(request: pytest.FixtureRequest) -> Iterator[Factory]:
    """Builds limiters of the parametrized backend (Redis: a private key prefix)."""
    made: list[ProviderRateLimiter] = []

    def build(table: RateTable) -> ProviderRateLimiter:
        if request.param == "memory":
            limiter: ProviderRateLimiter = MemoryRateLimiter(table)
        else:
            limiter = RedisRateLimiter.from_url(REDIS_URL, table,
                                                request.getfixturevalue("redis_prefix"))
        made.append(limiter)
        return limiter

    yield build
    for limiter in made:
        limiter.close()


def _hammer(limiter: ProviderRateLimiter, key: str, threads: int, each: int) -> list[float]:
    """`threads` threads each acquire `each` tokens at once; the wall times of the grants."""
    grants: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            for _ in range(each):
                limiter.acquire(key)
                with lock:
                    grants.append(time.time())
        except BaseException as exc:  # a failure in a thread must fail the test
            errors.append(exc)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=30)
    assert not errors
    return sorted(grants)


def _rate(grants: list[float]) -> float:
    return (len(grants) - 1) / (grants[-1] - grants[0])


def _busiest_second(grants: list[float]) -> int:
    return max(sum(1 for g in grants if t <= g < t + 1.0) for t in grants)


@pytest.mark.slow
def test_many_threads_stay_under_the_rate_and_nothing_is_dropped(make_limiter):
    limiter = make_limiter(RateTable({"twilio": Rate(10)}))
    grants = _hammer(limiter, "twilio:+48500000000", threads=32, each=1)
    assert len(grants) == 32  # every caller got its token: waits, never drops
    assert _rate(grants) <= 10.5
    assert _busiest_second(grants) <= 11
    assert grants[-1] - grants[0] >= 3.0  # 32 tokens at 10/s


def test_sixty_four_sender_threads_at_once(make_limiter):
    """The engine's default concurrency: 64 threads hit one bucket together."""
    limiter = make_limiter(RateTable({"sendgrid": Rate(40)}))
    grants = _hammer(limiter, "sendgrid:no-reply@hub.example", threads=64, each=1)
    assert len(grants) == 64
    assert _rate(grants) <= 40 * 1.05


def test_unlimited_keys_do_not_wait(make_limiter):
    limiter = make_limiter(RateTable({"twilio": Rate(1)}))
    started = time.monotonic()
    for _ in range(50):
        assert limiter.acquire("sendgrid") == 0.0
    assert time.monotonic() - started < 1.0


def test_senders_have_their_own_buckets_and_overrides(make_limiter):
    table = RateTable({"twilio": Rate(2)}, {"twilio:+48500000002": Rate(100)})
    limiter = make_limiter(table)
    limiter.acquire("twilio:+48500000001")
    started = time.monotonic()
    limiter.acquire("twilio:+48500000003")  # another sender: its own bucket, no wait
    for _ in range(5):
        limiter.acquire("twilio:+48500000002")  # overridden to 100/s
    assert time.monotonic() - started < 0.2
    assert limiter.acquire("twilio:+48500000001") >= 0.4  # its own bucket at 2/s


def test_penalize_pauses_the_bucket(make_limiter):
    limiter = make_limiter(RateTable({"sendgrid": Rate(50)}))
    limiter.acquire("sendgrid")
    limiter.penalize("sendgrid", 0.6)
    waited = limiter.acquire("sendgrid")
    assert 0.5 <= waited < 1.5


def test_penalty_cancels_a_slot_reserved_before_it(make_limiter):
    """A thread already sleeping towards its slot does not send inside a later penalty."""
    limiter = make_limiter(RateTable({"twilio": Rate(2)}))
    limiter.acquire("twilio")
    done: list[float] = []
    started = time.monotonic()
    sleeper = threading.Thread(target=lambda: done.append(limiter.acquire("twilio")))
    sleeper.start()  # its slot is 0.5 s away
    time.sleep(0.15)
    limiter.penalize("twilio", 1.2)
    sleeper.join(timeout=10)
    assert done and time.monotonic() - started >= 1.25


def test_timeout_raises_and_takes_no_token(make_limiter):
    limiter = make_limiter(RateTable({"twilio": Rate(1)}))
    limiter.acquire("twilio")
    with pytest.raises(RateLimitTimeout) as caught:
        limiter.acquire("twilio", timeout=0.1)
    assert 0.5 < caught.value.wait <= 1.0
    waited = limiter.acquire("twilio")  # the refused call reserved nothing: one interval
    assert waited < 1.2


def _race_child(prefix: str, start_at: float, threads: int, each: int, out: Any) -> None:
    limiter = RedisRateLimiter.from_url(REDIS_URL, RateTable({"twilio": Rate(10)}), prefix)
    time.sleep(max(0.0, start_at - time.time()))
    out.put(_hammer(limiter, "twilio", threads, each))
    limiter.close()


@pytest.mark.slow
@pytest.mark.redis
def test_two_processes_sharing_redis_stay_under_the_rate(redis_prefix):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0  # after both children imported everything
    children = [ctx.Process(target=_race_child, args=(redis_prefix, start_at, 8, 2, out))
                for _ in range(2)]
    for child in children:
        child.start()
    results = [out.get(timeout=30) for _ in children]
    for child in children:
        child.join(timeout=10)
    grants = sorted(g for r in results for g in r)
    assert [len(r) for r in results] == [16, 16]  # nothing dropped in either process
    assert _rate(grants) <= 10.5
    assert _busiest_second(grants) <= 11


def test_keys_and_factory():
    assert limit_key("twilio", "+48500100200") == "twilio:+48500100200"
    assert limit_key("sendgrid", "Parcel Hub <no-reply@hub.example>") == "sendgrid:no-reply@hub.example"
    assert limit_key("webpush") == "webpush"
    twilio = TwilioSmsAdapter(make_client("AC" + "0" * 32, "token"), "+48500000000")
    assert adapter_key(GuardedAdapter(twilio, CircuitBreaker())) == "twilio:+48500000000"
    assert build_rate_limiter(Settings()) is None  # no rate set: no limiter, no cost
    settings = Settings(twilio_mps=5, rate_limit_senders={"twilio:+48500000009": 1})
    limiter = build_rate_limiter(settings)
    assert isinstance(limiter, MemoryRateLimiter)
    assert limiter.table.rate("twilio:+48500000001") == Rate(5)
    assert limiter.table.rate("twilio:+48500000009") == Rate(1)
    assert limiter.table.rate("sendgrid:x@y.pl") is None


@pytest.mark.redis
def test_factory_shares_buckets_through_redis_when_redis_is_configured():
    need_service("Redis", 6379)
    limiter = build_rate_limiter(Settings(sendgrid_mps=3, redis_url=REDIS_URL))
    assert isinstance(limiter, RedisRateLimiter)
    limiter.close()


# --- the hub's send path ---------------------------------------------------------------------


class TimedTwilio(FakeTwilio):
    """Remembers when each request arrived (answered or refused)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []

    def handle(self, req: Any) -> Any:
        self.arrivals.append(time.monotonic())
        return super().handle(req)

    def fault_reply(self, fault: Any) -> Any:
        self.arrivals.append(time.monotonic())
        return super().fault_reply(fault)


@pytest.fixture
def process_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Sets rate-limit environment variables for this process's limiter, undone after."""

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"HUB_{name.upper()}", value)
        get_settings.cache_clear()
        provider_limits.reset_process_rate_limiter()

    yield set_env
    monkeypatch.undo()
    get_settings.cache_clear()
    provider_limits.reset_process_rate_limiter()


def _customer(n: int) -> dict[str, Any]:
    return {"id": f"c-{n}", "name": "Anna", "phone": f"+4851234{n:04d}", "locale": "pl"}


def test_the_hub_sends_at_most_the_configured_rate(make_hub, process_limits):
    process_limits(twilio_mps="5")
    with TimedTwilio() as fake:
        hub = make_hub(**twilio_settings(fake))
        for n in range(6):
            hub.post(event(f"evt-{n}", customer=_customer(n)))
        hub.run_until_idle()
        assert len(fake.messages) == 6
        # 5/s: slots 0.2 s apart. Arrivals at the fake jitter by the request's own time on a
        # busy machine (a late one is followed by a short gap), so check the rate over windows
        arrivals = fake.arrivals
        assert arrivals[-1] - arrivals[0] >= 0.85
        assert max(sum(1 for t in arrivals if start <= t < start + 0.5)
                   for start in arrivals) <= 3


def test_a_429_with_retry_after_pauses_every_later_send(make_hub, process_limits):
    process_limits(twilio_mps="100")
    with TimedTwilio() as fake:
        fake.faults.next(status=429, headers={"Retry-After": "1"})
        hub = make_hub(**twilio_settings(fake))
        for n in range(3):
            hub.post(event(f"evt-{n}", customer=_customer(n)))
        hub.run_until_idle()
        assert len(fake.messages) == 3  # the refused one was retried: nothing lost
        assert len(fake.arrivals) == 4  # the 429, then three accepted
        assert fake.arrivals[1] - fake.arrivals[0] >= 0.95  # nobody sent inside the pause


def test_a_slot_too_far_away_defers_without_spending_an_attempt(make_hub, process_limits):
    process_limits(twilio_mps="0.5", rate_limit_max_wait_seconds="0.2")
    with FakeTwilio() as fake:
        hub = make_hub(**twilio_settings(fake))
        hub.post(event("evt-a", customer=_customer(1)))
        hub.post(event("evt-b", customer=_customer(2)))
        hub.worker.run_once()
        views = [hub.event_view(e) for e in ("evt-a", "evt-b")]
        assert len(fake.messages) == 1
        deferred = [d for v in views for d in v["decisions"] if d["outcome"] == "deferred"]
        assert deferred and "provider rate limit" in (deferred[0]["detail"] or "")
        hub.run_until_idle(timeout=10)
        assert len(fake.messages) == 2
