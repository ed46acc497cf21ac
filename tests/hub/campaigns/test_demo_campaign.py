"""`hub demo` ends with a campaign: clicks through /c/, a conversion, the report table."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_ends_with_a_campaign_report() -> None:
    done = subprocess.run([sys.executable, "-m", "hub", "demo"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout.split("Campaign (two variants", 1)[1]
    assert re.search(r"campaign \d+ completed", out)
    assert out.count("-> 302 https://parcelhub.example/oferta") == 3
    assert "bought for 129.90 PLN" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split()[:1] in (["a"], ["b"], ["holdout"])}
    assert set(rows) == {"a", "b", "holdout"}
    assert int(rows["a"][5]) + int(rows["b"][5]) == 1  # the one conversion, credited once
    assert rows["holdout"][2] == "0"  # the holdout got nothing
