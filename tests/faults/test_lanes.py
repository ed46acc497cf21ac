"""Priority lanes under load: an urgent notice posted behind a 10,000-message backlog in the
bulk lane reaches the provider within 2 seconds, while the backlog keeps moving."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from hub.events import EventIn
from hub.intake import accept
from hub.models import OutboxJob
from hub.worker import Worker
from tests.channels.conftest import twilio_settings
from tests.fakes.twilio import FakeTwilio
from tests.helpers import event, make_runtime

pytestmark = pytest.mark.slow
BACKLOG = 10_000
URGENT_PHONE = "+48519999999"


class TimedTwilio(FakeTwilio):
    """A provider 200 ms away that notes when each number was reached."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    def handle(self, req: Any) -> Any:
        time.sleep(0.2)
        self.arrived.setdefault(req.form().get("To", ""), time.monotonic())
        return super().handle(req)


def test_urgent_notice_overtakes_a_bulk_backlog(tmp_path: Path) -> None:
    with TimedTwilio() as fake:
        runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path,
                               **twilio_settings(fake), worker_poll_seconds=0.05)
        for start in range(0, BACKLOG, 1000):
            accept(runtime.db, "p", [EventIn.model_validate(event(
                f"bulk-{i}", type_="parcel.delivered",
                customer={"id": f"b-{i}", "phone": f"+4851{i:07d}"}))
                for i in range(start, start + 1000)])
        # A marketing backlog that really sends (consent aside): the same jobs in the bulk lane.
        with runtime.db.transaction() as s:
            s.execute(update(OutboxJob).values(lane="bulk"))
        worker = Worker(runtime.db, runtime.pipeline, runtime.settings)
        thread = worker.start_thread()
        try:
            deadline = time.monotonic() + 30
            while len(fake.arrived) < 300 and time.monotonic() < deadline:
                time.sleep(0.05)
            posted = time.monotonic()
            accept(runtime.db, "p", [EventIn.model_validate(event(
                "urgent-1", type_="parcel.out_for_delivery",
                customer={"id": "u-1", "phone": URGENT_PHONE}))])
            while URGENT_PHONE not in fake.arrived and time.monotonic() < posted + 10:
                time.sleep(0.01)
            reached = fake.arrived.get(URGENT_PHONE, float("inf")) - posted
            backlog_sent = len(fake.arrived) - 1
        finally:
            worker.stop()
            thread.join(timeout=60)
            runtime.stop()
    print(f"\nurgent behind {BACKLOG} bulk: reached the provider {reached:.2f} s after intake "
          f"({backlog_sent} bulk messages sent by then)")
    assert reached <= 2.0
    assert backlog_sent < BACKLOG  # it really was behind a backlog
