"""What a run decides: a Decision per channel, and the job's next state (done, deferred,
retried with backoff, dead-lettered)."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, update

from hub.models import Decision, Event, OutboxJob
from hub.settings import Settings

OUTBOX, EVENTS, DECISIONS_T = (cast(Table, m.__table__) for m in (OutboxJob, Event, Decision))


class Outcome(enum.StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"
    DEFERRED = "deferred"
    FAILED = "failed"
    DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class ChannelDecision:
    channel: str
    outcome: Outcome
    reason: str
    detail: str | None = None
    until: datetime | None = None
    retry_after: float | None = None


@dataclass(slots=True)
class JobOutcome:
    """How a run ends: done, deferred to `defer_until`, or retried after a transient error."""

    event_pk: int
    decisions: list[ChannelDecision] = field(default_factory=list)
    defer_until: datetime | None = None
    transient_error: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """The job's next row values, the event's state, and a closing decision if any."""

    job: dict[str, Any]
    state: str
    extra: ChannelDecision | None = None


def backoff(attempt: int, settings: Settings, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, never sooner than the provider's Retry-After."""
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def transition(outcome: JobOutcome | None, error: str | None, attempts: int, age: float,
               settings: Settings, now: datetime) -> Transition:
    """The next state of a job after a run (`outcome` None and no error: nothing to do)."""
    done = {"state": "done", "lease_owner": None, "lease_until": None}
    if outcome is None and error is None:
        return Transition(done, "processed")
    transient = error or (outcome.transient_error if outcome else None)
    circuit = outcome is not None and any(d.reason == "circuit_open" for d in outcome.decisions)
    if age > settings.delivery_max_age_seconds and (transient is not None or circuit):
        reason = transient or "provider circuit still open"
        return _dead(f"max age exceeded: {reason}", "max_age_exceeded", reason)
    if outcome is not None and outcome.defer_until is not None:
        # a deferral is not a failed attempt
        return Transition({"state": "pending", "not_before": outcome.defer_until,
                           "attempts": attempts - 1, "lease_owner": None, "lease_until": None},
                          "deferred")
    if transient is not None and attempts >= settings.max_attempts:
        return _dead(transient, "dead_letter", transient)
    if transient is not None:
        delay = backoff(attempts, settings, outcome.retry_after if outcome else None)
        return Transition({"state": "pending", "last_error": transient,
                           "not_before": now + timedelta(seconds=delay),
                           "lease_owner": None, "lease_until": None}, "retrying")
    return Transition(done, "processed")


def _dead(last_error: str, reason: str, detail: str) -> Transition:
    return Transition({"state": "dead", "last_error": last_error, "lease_owner": None,
                       "lease_until": None}, "dead",
                      ChannelDecision("*", Outcome.FAILED, reason, detail))


def job_values(values: dict[str, Any], attempts: int) -> dict[str, Any]:
    """The outbox row's new values as bind parameters (named apart from the columns)."""
    return {"b_state": values["state"], "b_not_before": values.get("not_before"),
            "keep_not_before": "not_before" not in values,
            "b_attempts": values.get("attempts", attempts),
            "b_last_error": values.get("last_error")}


def write_rows(session: Any, job_rows: list[dict[str, Any]], event_rows: list[dict[str, Any]],
               decisions: list[tuple[int, list[ChannelDecision]]], now: Any) -> None:
    """Job rows, event states and decisions of a batch, as executemany statements."""
    conn = session.connection()
    for keep in (True, False):  # rows that keep their not_before, rows that change it
        rows = [{k: v for k, v in r.items() if k != "keep_not_before"
                 and not (keep and k == "b_not_before")}
                for r in job_rows if r["keep_not_before"] is keep]
        if rows:
            conn.execute(_JOB_KEEPING_NOT_BEFORE if keep else _JOB, rows)
    if event_rows:
        conn.execute(_EVENT_STATE, event_rows)
    if decisions:
        conn.execute(_FORGET_DECISIONS, {"b_pks": [pk for pk, _ in decisions]})
        rows = [{"event_pk": pk, "channel": d.channel, "outcome": str(d.outcome),
                 "reason": d.reason, "detail": d.detail, "created_at": now}
                for pk, made in decisions for d in made]
        if rows:
            conn.execute(_DECISION, rows)


# write_rows' statements, built once (every batch runs them)
_JOB_KEEPING_NOT_BEFORE = update(OUTBOX).where(OUTBOX.c.id == bindparam("b_id")).values(
    state=bindparam("b_state"), lease_owner=None, lease_until=None,
    attempts=bindparam("b_attempts"), last_error=bindparam("b_last_error"),
    updated_at=bindparam("b_updated_at"))
_JOB = _JOB_KEEPING_NOT_BEFORE.values(not_before=bindparam("b_not_before"))
_EVENT_STATE = update(EVENTS).where(EVENTS.c.id == bindparam("b_id")).values(
    state=bindparam("b_state"))
_FORGET_DECISIONS = delete(DECISIONS_T).where(
    DECISIONS_T.c.event_pk.in_(bindparam("b_pks", expanding=True)))
_DECISION = insert(DECISIONS_T)
