"""Errors of the throttling stage."""


class ThrottlingError(Exception):
    """Base of every throttling error."""


class PolicyError(ThrottlingError, ValueError):
    """The policy file or a customer's overrides are invalid; the message names the field."""


class BackendError(ThrottlingError):
    """A counter backend is misconfigured or unreachable."""
