"""The limiter's decisions for a table of situations (policy + in-memory counters)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from throttling import (
    MemoryCounterStore,
    PolicyLimiter,
    Reason,
    ThrottleDecision,
    ThrottleRequest,
    Verdict,
    load_policy,
    parse_policy,
)

NOON = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)  # 12:00 in Warsaw
NIGHT = datetime(2026, 11, 25, 21, 30, tzinfo=UTC)  # 22:30 in Warsaw
RANKS = {"parcel.in_transit": (20, False), "parcel.out_for_delivery": (30, True),
         "parcel.ready_for_pickup": (50, True), "parcel.delivered": (100, False)}
_seq = iter(range(1, 1_000_000))


def request(event_type: str = "marketing.campaign", channel: str = "sms",
            now: datetime = NOON, **over: Any) -> ThrottleRequest:
    category = event_type.split(".")[0]
    category = "transactional" if category == "parcel" else category
    rank, urgent = RANKS.get(event_type, (0, False))
    values: dict[str, Any] = {
        "customer_id": "c-1", "channel": channel, "category": category,
        "event_type": event_type, "occurred_at": now, "now": now, "status_rank": rank,
        "urgent": urgent, "event_ref": f"ev{next(_seq)}",
        "tracking_number": "PL1" if category == "transactional" else None,
    }
    values.update(over)
    return ThrottleRequest(**values)


@pytest.fixture
def limiter() -> PolicyLimiter:
    return PolicyLimiter(load_policy(), MemoryCounterStore())


def verdicts(limiter: PolicyLimiter, *requests: ThrottleRequest) -> list[str]:
    return [str(limiter.check(r).reason) for r in requests]


def test_marketing_caps_name_the_rule(limiter: PolicyLimiter) -> None:
    hours = [0, 1, 4, 8, 9]
    got = verdicts(limiter, *(request(now=NOON - timedelta(hours=3) + timedelta(hours=h))
                              for h in hours))
    assert got == ["within_limits", "cap_exceeded:marketing_4h", "within_limits",
                   "cap_exceeded:marketing_sms_day", "cap_exceeded:marketing_sms_day"]


def test_marketing_4h_spans_channels_but_push_counts_alone(limiter: PolicyLimiter) -> None:
    assert verdicts(limiter, request(channel="email"), request(channel="push")) == [
        "within_limits", "cap_exceeded:marketing_4h"]
    loyalty = [request("loyalty.points_earned", channel="push") for _ in range(7)]
    assert verdicts(limiter, *loyalty)[-2:] == ["within_limits", "cap_exceeded:push_day"]


def test_transactional_is_exempt_but_burst_guarded(limiter: PolicyLimiter) -> None:
    got = verdicts(limiter, *(request("parcel.delivered", tracking_number=f"PL{i}")
                              for i in range(11)))
    assert got == ["within_limits"] * 10 + ["cap_exceeded:transactional_burst"]
    assert verdicts(limiter, request("parcel.delivered", channel="email",
                                     tracking_number="PL99")) == ["within_limits"]


def test_release_gives_the_slot_back(limiter: PolicyLimiter) -> None:
    first = request()
    assert limiter.check(first).verdict is Verdict.ALLOW
    limiter.release(first)
    assert verdicts(limiter, request()) == ["within_limits"]


@pytest.mark.parametrize(
    ("event_type", "over", "expected"),
    [
        ("marketing.campaign", {}, "quiet_hours"),
        ("loyalty.points_earned", {}, "quiet_hours"),
        ("parcel.in_transit", {}, "quiet_hours"),
        ("parcel.out_for_delivery", {}, "within_limits"),
        ("parcel.ready_for_pickup", {"deadline": NIGHT + timedelta(hours=5)}, "within_limits"),
        ("parcel.ready_for_pickup", {"deadline": NIGHT + timedelta(days=2)}, "quiet_hours"),
        ("parcel.ready_for_pickup", {}, "quiet_hours"),
        ("marketing.campaign", {"overrides": {"quiet_hours": {"enabled": False}}},
         "within_limits"),
        ("marketing.campaign", {"overrides": {"quiet_hours": {"start": "23:00", "end": "07:00"}}},
         "within_limits"),
        ("marketing.campaign", {"time_zone": "America/New_York"}, "within_limits"),
    ],
)
def test_quiet_hours_by_urgency_and_choice(
    limiter: PolicyLimiter, event_type: str, over: dict[str, Any], expected: str
) -> None:
    decision = limiter.check(request(event_type, now=NIGHT, **over))
    assert decision.reason == expected
    if expected == "quiet_hours":
        assert decision.verdict is Verdict.DEFER
        assert decision.until == datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # 08:00 CET


def test_deferred_status_is_superseded_by_a_newer_one_meanwhile(limiter: PolicyLimiter) -> None:
    transit = request("parcel.in_transit", now=NIGHT)
    assert limiter.check(transit).verdict is Verdict.DEFER
    assert verdicts(limiter, request("parcel.out_for_delivery", now=NIGHT)) == ["within_limits"]
    morning = ThrottleRequest(**{**_fields(transit), "now": datetime(2026, 11, 26, 7, 0,
                                                                       tzinfo=UTC)})
    assert limiter.check(morning) == ThrottleDecision(Verdict.DROP, Reason.SUPERSEDED)


def test_deferred_status_alone_goes_out_at_the_end_of_the_night(limiter: PolicyLimiter) -> None:
    transit = request("parcel.in_transit", now=NIGHT)
    assert limiter.check(transit).verdict is Verdict.DEFER
    morning = ThrottleRequest(**{**_fields(transit), "now": datetime(2026, 11, 26, 7, 0,
                                                                       tzinfo=UTC)})
    assert limiter.check(morning).verdict is Verdict.ALLOW


def test_collapse_hold_lets_a_quick_newer_status_win() -> None:
    policy = parse_policy({"collapse": {"hold": "10m"}, "quiet_hours": {"enabled": False}})
    limiter = PolicyLimiter(policy, MemoryCounterStore())
    transit = request("parcel.in_transit")
    first = limiter.check(transit)
    assert (first.verdict, first.reason) == (Verdict.DEFER, Reason.COLLAPSE_HOLD)
    assert first.until == NOON + timedelta(minutes=10)
    assert verdicts(limiter, request("parcel.out_for_delivery")) == ["within_limits"]
    later = ThrottleRequest(**{**_fields(transit), "now": NOON + timedelta(minutes=10)})
    assert limiter.check(later).reason == Reason.SUPERSEDED


def test_stale_and_duplicate(limiter: PolicyLimiter) -> None:
    assert verdicts(
        limiter,
        request("parcel.delivered"),
        request("parcel.out_for_delivery"),
        request("parcel.delivered"),
        request("parcel.delivered", channel="email"),
    ) == ["within_limits", "stale_status", "duplicate", "within_limits"]


def test_invalid_overrides_fall_back_to_the_policy(limiter: PolicyLimiter) -> None:
    assert verdicts(limiter, request(now=NIGHT, overrides={"quiet_hours": "never"})) == [
        "quiet_hours"]


def at(req: ThrottleRequest, now: datetime, **over: Any) -> ThrottleRequest:
    return ThrottleRequest(**{**_fields(req), "now": now, **over})


def test_digest_holds_gathers_then_releases_one_batch() -> None:
    limiter = PolicyLimiter(load_policy(), MemoryCounterStore())
    choice = {"digest": {"hour": 18}}
    first = request("loyalty.points_earned", channel="email", overrides=choice,
                    summary={"event_id": "e1"})
    second = request("marketing.campaign", channel="email", overrides=choice,
                     now=NOON + timedelta(hours=2), summary={"event_id": "e2"})
    late = request("loyalty.points_expiring", channel="email", overrides=choice,
                   now=NOON + timedelta(hours=3), summary={"event_id": "e3"})
    due = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)  # 18:00 CET
    gathered = due + timedelta(minutes=1)
    for held in (first, second, late):
        decision = limiter.check(held)
        assert (decision.verdict, decision.reason, decision.until) == (
            Verdict.DEFER, Reason.DIGEST_HELD, due)
    # at 18:00 the jobs that still reach the limiter confirm their items and gather;
    # `late` never comes back (e.g. consent withdrawn), so its item is never sent
    for held in (first, second):
        assert limiter.check(at(held, due)).until == gathered
    released = limiter.check(at(first, gathered))
    assert (released.verdict, released.reason) == (Verdict.ALLOW, Reason.DIGEST_RELEASE)
    assert released.digest is not None and released.digest.channel == "email"
    assert [i.summary["event_id"] for i in released.digest.items] == ["e1", "e2"]
    assert limiter.check(at(second, gathered)).reason == Reason.DIGEST_MERGED
    # a transactional message is never held for the digest
    assert verdicts(limiter, request("parcel.delivered", overrides=choice)) == ["within_limits"]


def test_digest_not_sent_is_given_back() -> None:
    limiter = PolicyLimiter(load_policy(), MemoryCounterStore())
    held = request("loyalty.points_earned", channel="email", overrides={"digest": {"hour": 12}},
                   now=NOON - timedelta(hours=3))
    assert limiter.check(held).until == NOON
    assert limiter.check(at(held, NOON)).until == NOON + timedelta(minutes=1)
    later = NOON + timedelta(minutes=1)
    assert limiter.check(at(held, later)).verdict is Verdict.ALLOW
    limiter.release(at(held, later))
    retry = limiter.check(at(held, later, channel="push"))
    assert retry.digest is not None and len(retry.digest.items) == 1


def _fields(req: ThrottleRequest) -> dict[str, Any]:
    return {name: getattr(req, name) for name in req.__dataclass_fields__}
