"""Crash points for the fault tests: `HUB_FAILPOINT=<name>` makes the process SIGKILL itself
at that point with probability `HUB_FAILPOINT_PROBABILITY` (default 1). Unset, a point costs
one comparison."""

from __future__ import annotations

import os
import random
import signal

_ACTIVE = os.environ.get("HUB_FAILPOINT")
_PROBABILITY = float(os.environ.get("HUB_FAILPOINT_PROBABILITY", "1"))

CLAIMED = "claimed"  # the job is leased, nothing else done
RENDERED = "rendered"  # the message is rendered, no send record yet
BEFORE_SEND = "before_send"  # the send record says `sending`, the provider has nothing
AFTER_SEND = "after_send"  # the provider has the message, the record still says `sending`


def reach(name: str) -> None:
    """Dies here (kill -9 semantics: no cleanup, no flush) if this point is armed."""
    if name == _ACTIVE and random.random() < _PROBABILITY:
        os.kill(os.getpid(), signal.SIGKILL)
