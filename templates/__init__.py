"""Message catalog and the sandboxed, localised renderer."""

from templates.catalog import CHANNELS, DIGEST, LOCALES, TONES, Coverage
from templates.context import Brand, RenderContext, build_context
from templates.errors import (
    RenderError,
    SandboxViolation,
    TemplateMissing,
    UndefinedVariable,
)
from templates.renderer import (
    DraftTemplate,
    RenderedMessage,
    Renderer,
    RenderRequest,
    SmsInfo,
)
from templates.sms import Encoding, SegmentCount, Transliteration, count_segments

__all__ = [
    "CHANNELS", "DIGEST", "LOCALES", "TONES", "Brand", "Coverage", "DraftTemplate", "Encoding",
    "RenderContext",
    "RenderError", "RenderRequest", "RenderedMessage", "Renderer", "SandboxViolation",
    "SegmentCount", "SmsInfo", "TemplateMissing", "Transliteration", "UndefinedVariable",
    "build_context", "count_segments",
]
