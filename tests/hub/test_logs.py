"""Logs are JSON, carry the event and notification ids, and never a full phone or e-mail."""

from __future__ import annotations

import io
import json
from pathlib import Path

from hub.events import EventIn
from hub.intake import accept
from hub.logs import configure, mask_text
from hub.worker import Worker
from tests.helpers import event, make_runtime


def test_pipeline_logs_are_masked_json_with_ids(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure("INFO", json=True, stream=stream)
    try:
        runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
        accept(runtime.db, "p", [EventIn.model_validate(event("evt-log"))])
        Worker(runtime.db, runtime.pipeline, runtime.settings).drain()
    finally:
        configure("INFO", json=True)
    text = stream.getvalue()
    assert "+48512345678" not in text and "512345678" not in text
    assert "anna.kowalska@example.pl" not in text
    records = [json.loads(line) for line in text.splitlines()]
    send = next(r for r in records if r["event"] == "send")
    assert send["event_id"] == "evt-log" and send["notification_id"] >= 1


def test_mask_text() -> None:
    assert mask_text("call +48 512 345 678 or +48512345678") == "call ***678 or ***678"
    assert mask_text("mail jan.nowak@example.pl") == "mail j***@example.pl"
