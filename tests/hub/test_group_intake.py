"""Group commit of posted events: concurrent requests share one transaction, and one
request's idempotency conflict does not fail its neighbours."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func, select

from hub.events import EventIn
from hub.intake import GroupIntake, IdempotencyConflict, IntakeStatus, accept
from hub.models import Event, OutboxJob
from tests.helpers import event, make_runtime


def _ev(event_id: str, **over: object) -> EventIn:
    return EventIn.model_validate(event(event_id, **over))


def _post_together(intake: GroupIntake, requests: list[list[EventIn]]) -> list[object]:
    """Posts every request from its own thread at once; each slot gets results or the error."""
    outcomes: list[object] = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def post(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = intake.accept("carrier", requests[i])
        except Exception as exc:  # kept for the assertions
            outcomes[i] = exc

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


def test_concurrent_posts_are_all_stored_once(database_url: str, tmp_path: Path) -> None:
    rt = make_runtime(database_url, tmp_path)
    grouped_before = _grouped_requests()
    # 40 requests, the last ten repeat the first ten's events (same content): duplicates
    requests = [[_ev(f"g-{i % 30}")] for i in range(40)]
    outcomes = _post_together(rt.intake, requests)
    statuses = [o[0].status for o in outcomes]  # type: ignore[index]
    assert statuses.count(IntakeStatus.ACCEPTED) == 30
    assert statuses.count(IntakeStatus.DUPLICATE) == 10
    with rt.db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 30
        assert s.scalar(select(func.count()).select_from(OutboxJob)) == 30
    assert _grouped_requests() > grouped_before  # some requests did share a commit
    rt.db.dispose()


def test_a_conflicting_request_fails_alone(database_url: str, tmp_path: Path) -> None:
    rt = make_runtime(database_url, tmp_path)
    accept(rt.db, "carrier", [_ev("taken")])
    clash = _ev("taken", customer={"id": "someone-else", "phone": "+48600100200",
                                   "locale": "pl"})
    requests = [[_ev(f"ok-{i}")] for i in range(12)]
    requests.insert(6, [clash])
    outcomes = _post_together(rt.intake, requests)
    assert isinstance(outcomes[6], IdempotencyConflict)
    others = outcomes[:6] + outcomes[7:]
    assert all(o[0].status is IntakeStatus.ACCEPTED for o in others)  # type: ignore[index]
    with rt.db.sessions() as s:
        ids = set(s.scalars(select(Event.event_id)))
    assert ids == {"taken", *(f"ok-{i}" for i in range(12))}
    rt.db.dispose()


def _grouped_requests() -> float:
    """Requests committed in a group of more than one so far (from the histogram)."""
    from hub.metrics import INTAKE_GROUP

    one = total = 0.0
    for sample in INTAKE_GROUP.collect()[0].samples:
        if sample.name.endswith("_bucket") and sample.labels["le"] == "1.0":
            one = sample.value
        if sample.name.endswith("_count"):
            total = sample.value
    return total - one


def test_group_with_a_clash_is_rolled_back_and_committed_one_by_one(tmp_path: Path) -> None:
    """Deterministic: the leader's group holds a clash (the threads above may or may not
    have grouped it)."""
    from hub.intake import _stage, _Waiting

    rt = make_runtime(f"sqlite:///{tmp_path}/g.db", tmp_path)
    accept(rt.db, "carrier", [_ev("taken")])
    clash = _ev("taken", customer={"id": "other", "phone": "+48600100200", "locale": "pl"})
    group = [_Waiting(_stage("carrier", [e], "default")) for e in (_ev("a"), clash, _ev("b"))]
    rt.intake._commit(group)
    assert [w.results[0].status for w in (group[0], group[2])] == [IntakeStatus.ACCEPTED] * 2  # type: ignore[index]
    assert isinstance(group[1].error, IdempotencyConflict)
    with rt.db.sessions() as s:
        assert set(s.scalars(select(Event.event_id))) == {"taken", "a", "b"}
    rt.db.dispose()
