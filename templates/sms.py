"""SMS encoding: GSM-7 (basic + extension table) vs UCS-2, segment counting and folding.

GSM 03.38 packs 160 septets into one message, 153 per part once a user-data header is
needed for concatenation; UCS-2 carries 70 UTF-16 code units, 67 per part. Extension
characters cost an escape septet plus their own; a character outside the BMP (an emoji)
costs a surrogate pair. Neither an escape pair nor a surrogate pair is split across parts.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

SINGLE_LIMITS = {"gsm7": 160, "ucs2": 70}
PART_LIMITS = {"gsm7": 153, "ucs2": 67}

# Polish letters first (the reason the policy exists), then typography that phones and
# word processors put into copy and that would otherwise force UCS-2 for a whole message.
_FOLD = str.maketrans({
    "ą": "a", "ć": "c", "ę": "e", "ł": "l", "ń": "n", "ó": "o", "ś": "s", "ź": "z", "ż": "z",
    "Ą": "A", "Ć": "C", "Ę": "E", "Ł": "L", "Ń": "N", "Ó": "O", "Ś": "S", "Ź": "Z", "Ż": "Z",
    "„": '"', "”": '"', "“": '"', "‚": "'", "’": "'", "‘": "'", "«": '"', "»": '"',
    "–": "-", "—": "-", "…": "...", "\u00a0": " ", "\u202f": " ",
})


class Encoding(enum.StrEnum):
    """How the message travels on the air interface."""

    GSM7 = "gsm7"
    UCS2 = "ucs2"


class Transliteration(enum.StrEnum):
    """When Latin diacritics are folded so that a message stays in GSM-7."""

    OFF = "off"
    ALWAYS = "always"
    OVER_BUDGET = "over_budget"


@dataclass(frozen=True, slots=True)
class SegmentCount:
    """What a text costs: encoding, units (septets or UTF-16 code units), parts."""

    encoding: Encoding
    units: int
    segments: int
    per_segment: int

    @property
    def remaining(self) -> int:
        """Units still free before another segment is needed (approximate when split)."""
        return max(self.segments, 1) * self.per_segment - self.units


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 basic or extension table."""
    return GSM7_ALL.issuperset(text)


def _costs(text: str, encoding: Encoding) -> list[int]:
    if encoding is Encoding.GSM7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _parts(costs: list[int], size: int) -> int:
    """Parts needed when no character's units may straddle two parts."""
    parts, used = 1, 0
    for cost in costs:
        if used + cost > size:
            parts, used = parts + 1, 0
        used += cost
    return parts


def _units(text: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return len(text) + sum(text.count(ch) for ch in GSM7_EXTENSION)
    return len(text.encode("utf-16-le")) // 2


def count_segments(text: str) -> SegmentCount:
    """The encoding a text needs and how many segments it takes."""
    encoding = Encoding.GSM7 if is_gsm7(text) else Encoding.UCS2
    units = _units(text, encoding)  # fast path; per-character costs only when split
    if units <= SINGLE_LIMITS[encoding]:
        return SegmentCount(encoding, units, 1 if units else 0, SINGLE_LIMITS[encoding])
    size = PART_LIMITS[encoding]
    if units == len(text):  # every character costs one unit: nothing can straddle a part
        return SegmentCount(encoding, units, -(-units // size), size)
    return SegmentCount(encoding, units, _parts(_costs(text, encoding), size), size)


def fold_to_gsm7(text: str) -> str:
    """Polish diacritics and typographic punctuation folded to GSM-7 look-alikes; other
    Latin letters lose their marks only when GSM-7 lacks them (é, ü, ß... are kept)."""
    folded = text.translate(_FOLD)
    if is_gsm7(folded):
        return folded
    out = []
    for ch in folded:
        if ch in GSM7_BASIC or ch in GSM7_EXTENSION:
            out.append(ch)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        out.append(base if base and is_gsm7(base) else ch)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class SmsText:
    """The body to send and what it costs, after the transliteration policy."""

    body: str
    count: SegmentCount
    transliterated: bool
    budget: int

    @property
    def over_budget(self) -> bool:
        return self.count.segments > self.budget


def apply_policy(body: str, policy: Transliteration, budget: int) -> SmsText:
    """Applies the policy: fold always, only when the original exceeds its budget, or never.
    A fold is kept only if it actually reaches GSM-7 (otherwise it would just lose letters)."""
    original = count_segments(body)
    if policy is Transliteration.OFF or original.encoding is Encoding.GSM7:
        return SmsText(body, original, False, budget)
    if policy is Transliteration.OVER_BUDGET and original.segments <= budget:
        return SmsText(body, original, False, budget)
    folded = fold_to_gsm7(body)
    if not is_gsm7(folded):
        return SmsText(body, original, False, budget)
    return SmsText(folded, count_segments(folded), True, budget)
