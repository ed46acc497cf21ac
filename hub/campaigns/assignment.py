"""Deterministic assignment of a customer to a variant or the holdout.

A keyed hash of (campaign, customer key) picks the bucket, so the same customer lands in
the same group however often, and in whatever order, the audience is walked: a re-run or a
restarted runner never moves anyone. The holdout is drawn from one half of the digest and
the variant from the other, so the two draws are independent.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

HOLDOUT = "holdout"
_SCALE = 10_000  # holdout resolution: 0.01 %


def assign(seed: str, campaign_id: int, customer_key: str, variants: Sequence[tuple[str, int]],
           holdout_percent: int) -> str:
    """The variant name (or HOLDOUT) of a customer; `variants` are (name, weight) pairs."""
    digest = hmac.new(seed.encode(), f"{campaign_id}:{customer_key}".encode(),
                      hashlib.sha256).digest()
    if int.from_bytes(digest[:8], "big") % _SCALE < holdout_percent * (_SCALE // 100):
        return HOLDOUT
    point = int.from_bytes(digest[8:16], "big") % sum(weight for _, weight in variants)
    for name, weight in variants:
        if point < weight:
            return name
        point -= weight
    raise AssertionError("weights must be positive")
