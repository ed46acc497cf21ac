"""Errors that drive retries: transient (try again later) or permanent (never retry)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from channels.base import ErrorClass, SendResult


class ChannelError(Exception):
    """Base of every adapter error."""


class TransientError(ChannelError):
    """The provider may accept the message later (timeouts, 429, 5xx)."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class PermanentError(ChannelError):
    """The message can never be delivered this way (invalid number, unsubscribed, gone)."""


class ConfigurationError(ChannelError):
    """An adapter's settings are missing or wrong; the message names the field."""


@dataclass(frozen=True, slots=True)
class Rule:
    """An error's class, and what it says about the address (dead, or opted out)."""

    error_class: ErrorClass
    deactivate: bool = False
    opted_out: bool = False


TRANSIENT = Rule(ErrorClass.TRANSIENT)
PERMANENT = Rule(ErrorClass.PERMANENT)
DEAD_ADDRESS = Rule(ErrorClass.PERMANENT, deactivate=True)
OPTED_OUT = Rule(ErrorClass.PERMANENT, deactivate=True, opted_out=True)


class ErrorTable:
    """One adapter's provider errors → transient/permanent, in a single lookup table.

    Keys are provider error codes (Twilio's 21211, an SMTP reply code...) or HTTP statuses;
    a code wins over a status. Unknown HTTP statuses fall back to their family: 408/425/429
    and 5xx may pass later, other 4xx never will; no answer at all is transient.
    """

    def __init__(self, table: dict[int | str, Rule]) -> None:
        self.table = dict(table)

    def classify(self, status: int | None, code: int | str | None = None) -> Rule:
        """The rule for a provider answer (status and/or provider error code)."""
        for key in (code, status):
            if key is not None and key in self.table:
                return self.table[key]
        if status is None or status in (408, 425, 429) or status >= 500:
            return TRANSIENT
        return PERMANENT

    def result(
        self, status: int | None, code: int | str | None, detail: str,
        retry_after: float | None = None,
    ) -> SendResult:
        """The SendResult for a failed send, classified by this table."""
        rule = self.classify(status, code)
        if rule.error_class is ErrorClass.TRANSIENT:
            return SendResult.transient(detail, retry_after)
        return SendResult.permanent(detail, deactivate=rule.deactivate, opted_out=rule.opted_out)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), if any."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
