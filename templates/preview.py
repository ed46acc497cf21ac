"""What the preview API and the marketer page show: coverage, sample renders, warnings."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from templates.catalog import CHANNELS, DIGEST, LOCALES, REQUIRED_BLOCKS, TONES, Coverage
from templates.errors import (
    RenderError,
    SandboxViolation,
    TemplateMissing,
    UndefinedVariable,
)
from templates.renderer import DraftTemplate, RenderedMessage, Renderer, RenderRequest
from templates.samples import PROFILES, SAMPLE_NOW, sample_digest_items, sample_event
from templates.sms import Encoding

# Gmail clips messages whose HTML exceeds about 102 kB.
HTML_CLIP_BYTES = 102_000


class PreviewWarning(enum.StrEnum):
    """Why a preview deserves a second look."""

    FALLBACK_USED = "fallback_used"
    SMS_OVER_BUDGET = "sms_over_budget"
    SMS_UCS2 = "sms_ucs2"
    SMS_TRANSLITERATED = "sms_transliterated"
    HTML_TOO_LARGE = "html_too_large"
    UNDEFINED_VARIABLE = "undefined_variable"
    SANDBOX_VIOLATION = "sandbox_violation"
    TEMPLATE_MISSING = "template_missing"
    RENDER_ERROR = "render_error"


@dataclass(frozen=True, slots=True)
class Warning:
    code: PreviewWarning
    message: str


@dataclass(frozen=True, slots=True)
class Preview:
    """A rendered sample (None when rendering failed) and its warnings."""

    message: RenderedMessage | None
    warnings: tuple[Warning, ...]
    html_bytes: int = 0


def warnings_for(message: RenderedMessage) -> list[Warning]:
    """Fallbacks taken, SMS cost and encoding, HTML size."""
    out = [Warning(PreviewWarning.FALLBACK_USED, f"template fallback: {note}")
           for note in message.fallbacks]
    sms = message.sms
    if sms is not None:
        if sms.encoding is Encoding.UCS2:
            out.append(Warning(PreviewWarning.SMS_UCS2, f"UCS-2: {sms.units} UTF-16 units, "
                               "70 per single SMS, 67 per part"))
        if sms.transliterated:
            out.append(Warning(PreviewWarning.SMS_TRANSLITERATED,
                               "diacritics folded to stay in GSM-7"))
        if sms.over_budget:
            out.append(Warning(PreviewWarning.SMS_OVER_BUDGET,
                               f"{sms.segments} segments, budget {sms.budget}"))
    size = len(message.parts.get("html", "").encode())
    if size > HTML_CLIP_BYTES:
        out.append(Warning(PreviewWarning.HTML_TOO_LARGE,
                           f"HTML is {size} bytes; Gmail clips above {HTML_CLIP_BYTES}"))
    return out


def _error_warning(exc: RenderError) -> Warning:
    if isinstance(exc, TemplateMissing):
        return Warning(PreviewWarning.TEMPLATE_MISSING, str(exc))
    if isinstance(exc, UndefinedVariable):
        return Warning(PreviewWarning.UNDEFINED_VARIABLE, str(exc))
    if isinstance(exc, SandboxViolation):
        return Warning(PreviewWarning.SANDBOX_VIOLATION, str(exc))
    return Warning(PreviewWarning.RENDER_ERROR, str(exc))


def sample_payload(event_type: str, locale: str, parcel: dict[str, Any] | None = None,
                   data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sample event of a type, with the caller's parcel and data replacing the sample's."""
    payload = sample_event(event_type, locale)
    if parcel is not None:
        payload["parcel"] = parcel
    if data is not None:
        payload["data"] = data
    return payload


def preview(renderer: Renderer, event_type: str, channel: str, locale: str, tone: str, *,
            payload: dict[str, Any] | None = None, profile: dict[str, Any] | None = None,
            items: list[dict[str, Any]] | None = None,
            now: datetime | None = None, template_set: str | None = None,
            draft: DraftTemplate | None = None) -> Preview:
    """Renders one template (of the catalog, the inline `template_set`, or with `draft`:
    that draft as if published) with sample (or    given) data; never raises a RenderError."""
    payload = payload or sample_payload(event_type, locale)
    payload = {**payload, "type": event_type}
    profile = profile or PROFILES.get(locale, PROFILES["pl"])
    if items is None and event_type == DIGEST:
        items = sample_digest_items(locale)
    try:
        ctx = renderer.context(payload, profile, now=now or SAMPLE_NOW, items=items)
        chain = tuple(dict.fromkeys((locale, "pl", "en")))
        message = renderer.render(RenderRequest(event_type, channel, chain, tone, ctx,
                                                template_set), draft)
    except RenderError as exc:
        return Preview(None, (_error_warning(exc),))
    # malformed sample data from the caller: a parcel part of the wrong shape (AttributeError),
    # an amount Decimal cannot read (InvalidOperation), a time that overflows (OverflowError)
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        return Preview(None, (Warning(PreviewWarning.RENDER_ERROR,
                                      f"invalid sample data: {type(exc).__name__}: {exc}"),))
    return Preview(message, tuple(warnings_for(message)),
                   len(message.parts.get("html", "").encode()))


@dataclass(frozen=True, slots=True)
class Cell:
    event_type: str
    channel: str
    locale: str
    tone: str
    status: Coverage
    template: str | None


def coverage_matrix(renderer: Renderer, event_types: list[str]) -> list[Cell]:
    """Every event type × channel × locale × tone with its coverage status."""
    cells = []
    for event_type in [*event_types, DIGEST]:
        for channel in CHANNELS:
            for locale in LOCALES:
                for tone in TONES:
                    chain = tuple(dict.fromkeys((locale, "pl", "en")))
                    found = renderer.resolve(event_type, channel, chain, tone)
                    status = renderer.coverage(event_type, channel, locale, tone)
                    cells.append(Cell(event_type, channel, locale, tone, status,
                                      found.name if found else None))
    return cells


def draft_previews(renderer: Renderer, draft: DraftTemplate) -> dict[tuple[str, str], Preview]:
    """The draft rendered with sample data for every channel × tone of its locale (a
    channel the draft does not cover shows the catalog file that would serve it)."""
    return {(channel, tone): preview(renderer, draft.event_type, channel, draft.locale, tone,
                                     draft=draft)
            for channel in CHANNELS for tone in TONES}


def channels_dropped(renderer: Renderer, draft: DraftTemplate) -> list[str]:
    """Channels a catalog file of the draft's own locale covers but the draft does not:
    publishing it would send those channels to a fallback locale, so publishing is refused."""
    dropped = []
    for channel in CHANNELS:
        for tone in TONES:
            by_file = renderer.resolve(draft.event_type, channel, (draft.locale,), tone)
            if by_file is not None and not all(
                    b in draft.template.blocks for b in REQUIRED_BLOCKS[channel]):
                dropped.append(channel)
                break
    return dropped
