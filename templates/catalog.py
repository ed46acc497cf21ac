"""Where templates live and which one serves a request: locale and tone fallback, coverage.

Layout: `catalog/<event type>/<locale>[.<tone>].j2`. A file without a tone serves both tones
(English has one register; Polish, German and Ukrainian files switch on `formal` inside).
A file holds one Jinja block per message part; a channel is covered when its blocks exist.
"""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CATALOG_DIR = Path(__file__).with_name("catalog")
# app_push (the carrier's app) reuses the push blocks unless a file overrides them with
# app_push_title / app_push_body; inbox has its own, longer blocks.
CHANNELS = ("sms", "email", "push", "app_push", "inbox")
LOCALES = ("pl", "en", "uk", "de")
TONES = ("formal", "informal")
DIGEST = "digest"

# Blocks a file must define to cover a channel; optional ones are listed for the preview.
REQUIRED_BLOCKS: dict[str, tuple[str, ...]] = {
    "sms": ("sms",),
    "email": ("subject", "heading", "body"),
    "push": ("push_title", "push_body"),
    "app_push": ("push_title", "push_body"),
    "inbox": ("inbox_title", "inbox_body"),
}
OPTIONAL_BLOCKS: dict[str, tuple[str, ...]] = {
    "sms": (),
    "email": ("preheader", "cta_label", "cta_url", "rating_low", "rating_high"),
    "push": ("push_url",),
    "app_push": ("app_push_title", "app_push_body", "push_url"),
    "inbox": ("push_url",),
}


class Coverage(enum.StrEnum):
    """A cell of the coverage matrix."""

    PRESENT = "present"
    FALLBACK = "fallback"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Resolved:
    """The file (or published draft, then `compiled` holds it) chosen for a request and
    the fallbacks taken to reach it."""

    name: str
    locale: str
    tone: str
    fallbacks: tuple[str, ...]
    compiled: Any = None


def other_tone(tone: str) -> str:
    return "informal" if tone == "formal" else "formal"


def candidates(locales: tuple[str, ...], tone: str) -> list[tuple[str, str, str]]:
    """(file stem, locale, tone) in preference order: exact tone, tone-less, other tone;
    then the same for each further locale of the chain."""
    out = []
    for locale in locales:
        out += [(f"{locale}.{tone}", locale, tone), (locale, locale, tone),
                (f"{locale}.{other_tone(tone)}", locale, other_tone(tone))]
    return out


def describe_fallbacks(wanted: tuple[str, str], got: tuple[str, str]) -> tuple[str, ...]:
    """Human-readable fallbacks, e.g. ('locale uk→pl', 'tone informal→formal')."""
    notes = []
    if wanted[0] != got[0]:
        notes.append(f"locale {wanted[0]}→{got[0]}")
    if wanted[1] != got[1]:
        notes.append(f"tone {wanted[1]}→{got[1]}")
    return tuple(notes)


def load_budgets(directory: Path) -> dict[str, int]:
    """SMS segment budgets from `budgets.toml` (keys: default, locale, event, event/locale)."""
    path = directory / "budgets.toml"
    if not path.exists():
        return {"default": 1}
    return {str(k): int(v) for k, v in tomllib.loads(path.read_text("utf-8")).items()}


def sms_budget(budgets: dict[str, int], event_type: str, locale: str) -> int:
    """The most specific budget for an event type and locale."""
    for key in (f"{event_type}/{locale}", event_type, locale, "default"):
        if key in budgets:
            return budgets[key]
    return 1


def scan(directory: Path) -> dict[str, dict[str, str]]:
    """Event type → file stem → template name (relative to the catalog directory)."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted(directory.glob("*/*.j2")):
        found.setdefault(path.parent.name, {})[path.name.removesuffix(".j2")] = (
            f"{path.parent.name}/{path.name}"
        )
    return found
