"""Errors that drive retries: transient (try again later) or permanent (never retry)."""

from __future__ import annotations


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
