"""Render a message from the catalog in a sandboxed Jinja environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.sandbox import ImmutableSandboxedEnvironment

CATALOG = Path(__file__).with_name("catalog")


class RenderError(Exception):
    """The message cannot be rendered from this data (a permanent failure, never retried)."""


class TemplateMissing(RenderError):
    """No template exists for the event type (in any locale of the chain)."""


@dataclass(frozen=True, slots=True)
class RenderRequest:
    event_type: str
    channel: str
    locales: tuple[str, ...]
    tone: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    channel: str
    locale: str
    tone: str
    parts: dict[str, str]
    fallbacks: tuple[str, ...] = ()


class Renderer:
    """Compiles catalog templates once and renders them with plain context values."""

    def __init__(self, catalog: Path = CATALOG) -> None:
        self.env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(catalog),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )

    def render(self, request: RenderRequest) -> RenderedMessage:
        """The message parts for one channel; raises TemplateMissing if none exists."""
        try:
            template = self.env.get_template(f"{request.event_type}.j2")
        except TemplateNotFound as exc:
            raise TemplateMissing(request.event_type) from exc
        try:
            text = template.render(request.context).strip()
        except TemplateError as exc:
            raise RenderError(f"{request.event_type}/{request.channel}: {exc}") from exc
        title, _, body = text.partition("\n")
        parts = {
            "sms": {"body": " ".join(text.split())},
            "email": {"subject": title, "text": text},
            "push": {"title": title, "body": " ".join(body.split()) or title},
        }.get(request.channel, {"body": text})
        return RenderedMessage(request.channel, request.locales[0], request.tone, parts)
