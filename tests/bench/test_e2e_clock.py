"""bench/e2e.py gives the same work at any hour: its policy has no quiet hours and its events
are dated from now; the loopback fake holds every answer for its latency."""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from channels import OutgoingMessage
from channels.twilio_sms import TwilioSmsAdapter, make_client
from tests.fakes.twilio import FakeTwilio
from throttling import MemoryCounterStore, PolicyLimiter, ThrottleRequest, Verdict, load_policy

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import e2e  # noqa: E402


def _next_late_evening() -> datetime:
    """The next 23:30 in Warsaw (inside the packaged quiet hours), within a day from now."""
    warsaw = ZoneInfo("Europe/Warsaw")
    now = datetime.now(warsaw)
    late = now.replace(hour=23, minute=30, second=0, microsecond=0)
    return late if late > now else late + timedelta(days=1)


def _pickup_request(event: dict, now: datetime) -> ThrottleRequest:
    deadline = datetime.fromisoformat(event["parcel"]["pickup_point"]["deadline"])
    return ThrottleRequest(
        customer_id=event["customer"]["id"], channel="sms", category="transactional",
        event_type=event["type"], occurred_at=datetime.fromisoformat(event["occurred_at"]),
        now=now, tracking_number=event["parcel"]["tracking_number"], status_rank=50,
        urgent=True, time_zone="Europe/Warsaw", event_ref=event["event_id"], deadline=deadline)


def test_bench_pickup_notices_go_out_late_in_the_evening(tmp_path):
    event = e2e._event(1, "t", 0)
    occurred = datetime.fromisoformat(event["occurred_at"])
    assert abs(occurred - datetime.now(UTC)) < timedelta(minutes=1)  # dated from now
    now = _next_late_evening()
    request = _pickup_request(event, now)
    packaged = PolicyLimiter(load_policy(), MemoryCounterStore()).check(request)
    assert packaged.verdict is Verdict.DEFER  # what made the bench hang from 21:00 to 08:00
    bench = PolicyLimiter(load_policy(e2e.bench_policy_file(str(tmp_path))),
                          MemoryCounterStore()).check(request)
    assert bench.verdict is Verdict.ALLOW


def test_fake_provider_latency_delays_each_answer_in_parallel():
    with FakeTwilio() as fake:
        fake.latency = 0.3
        adapter = TwilioSmsAdapter(make_client(fake.account_sid, fake.auth_token, fake.url),
                                   "+48500000000")
        results = []

        def send(n: int) -> None:
            results.append(adapter.send(OutgoingMessage(f"k{n}", "sms", f"+4851234000{n}",
                                                        {"body": "hi"}, "pl")))

        started = time.monotonic()
        threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        elapsed = time.monotonic() - started
    assert len(results) == 4 and all(r.ok for r in results)
    assert 0.3 <= elapsed < 0.9  # each answer held 0.3 s, the four at the same time
