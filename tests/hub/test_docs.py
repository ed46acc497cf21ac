"""The architecture document's reason-code tables list every reason a decision can carry.

Support reads `docs/architecture.md` to explain a decision log; a reason the code writes but
the document does not list leaves them guessing, and a listed code that no longer exists
sends them looking for something that cannot happen.
"""

from __future__ import annotations

import re
from pathlib import Path

from preferences import SkipReason
from throttling.decision import Reason

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
# Modules that write decision reasons as literals (the enums cover preferences and throttling).
WRITERS = ("hub/engine.py", "hub/outcomes.py", "hub/pipeline.py", "hub/gdpr.py",
           "hub/campaigns/store.py")
# ChannelDecision(channel, Outcome.X, "reason", ...), _dead(error, "reason", ...) and the
# render step's `reason = "a" if ... else "b"`.
LITERAL = re.compile(r'Outcome\.[A-Z]+,\s*"([a-z_]+)"|_dead\([^,]+,\s*"([a-z_]+)"'
                     r'|reason = "([a-z_]+)" if .* else "([a-z_]+)"')
# Throttling reasons that mean "allowed": they reach the logs, never a decision.
ALLOWED = {Reason.WITHIN_LIMITS, Reason.NO_LIMIT, Reason.DIGEST_RELEASE}


def _code_reasons() -> set[str]:
    found = {str(r) for r in SkipReason} | {str(r) for r in Reason if r not in ALLOWED}
    for module in WRITERS:
        for match in LITERAL.finditer((ROOT / module).read_text("utf-8")):
            found |= {g for g in match.groups() if g}
    return found


def _documented() -> set[str]:
    """Codes in the first column of the tables under "Reason codes"."""
    section = DOC.read_text("utf-8").split("### Reason codes", 1)[1]
    return {m.group(1).split(":")[0]
            for m in re.finditer(r"^\| `([a-z_:<>]+)`", section, flags=re.MULTILINE)}


def test_every_reason_the_code_writes_is_documented() -> None:
    code = _code_reasons()
    assert {"send_in_doubt", "render_error", "dead_letter", "erased"} <= code  # parser works
    assert code - _documented() == set()


def test_every_documented_reason_exists_in_the_code() -> None:
    assert _documented() - _code_reasons() == set()


def test_allowed_throttling_reasons_are_explained_as_log_only() -> None:
    text = DOC.read_text("utf-8")
    for reason in ALLOWED:
        assert f"`{reason}`" in text
