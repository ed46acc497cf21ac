"""`hub demo` answers a feedback link once, and a second tap records nothing new."""

from __future__ import annotations

import subprocess
import sys


def test_demo_shows_a_feedback_link_answered() -> None:
    done = subprocess.run([sys.executable, "-m", "hub", "demo"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "tapped 9 -> HTTP 200, 'Dziękujemy za ocenę!'" in out
    assert "'Ocena jest już zapisana' (nothing new recorded)" in out
    assert "GET /v1/feedback -> 1 answer, average 9.0, NPS 100.0" in out
