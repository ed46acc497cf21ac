"""Why a render failed; each message names the template and what went wrong."""

from __future__ import annotations


class RenderError(ValueError):
    """A template could not produce a message (nothing is rendered)."""


class TemplateMissing(LookupError, RenderError):
    """No template exists for the event type and channel in any locale of the chain."""


class UndefinedVariable(RenderError):
    """A template used a variable the context does not hold (or that is empty)."""


class SandboxViolation(RenderError):
    """A template tried to reach something the sandbox forbids (dunder attributes, globals,
    mutation of context values)."""
