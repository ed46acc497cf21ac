"""Frequency caps, quiet hours, collapse and dedupe (policy and decision pure; counters pluggable)."""

from throttling.decision import AllowAll, Limiter, ThrottleDecision, ThrottleRequest, Verdict

__all__ = ["AllowAll", "Limiter", "ThrottleDecision", "ThrottleRequest", "Verdict"]
