"""`make demo` shows a reminder scheduled from ready_for_pickup and fired, and one cancelled
by delivered (the timer lines printed from GET /v1/events/{id}); and, one run for both, the
app customer's notifications per phone and inbox with its unread count."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_prints_timers_and_the_app_inbox() -> None:
    proc = subprocess.run([sys.executable, "-m", "hub", "demo"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "timer pickup_reminder  -24h" in out and "scheduled" in out
    assert "cancelled (moot: parcel.delivered demo-fu-3)" in out
    assert "fired -> event pickup_reminder:" in out
    assert "parcel.pickup_reminder pickup_reminder:" in out
    # the carrier's app (issue 14): both phones notified, every status in the inbox
    assert "Inbox of c-3001 as the app reads it with its session token (6 messages, 6 unread)" \
        in out
    assert "opens the newest one: 5 unread left. Another customer's inbox with this token: 403" \
        in out
    assert "    android  Kurier jedzie do Ciebie" in out and "    ios      Kurier jedzie" in out
