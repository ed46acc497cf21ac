"""Template sets written outside the catalog (a campaign variant's copy, typed in the API).

A set is plain text per locale and channel: e-mail subject, heading and body; SMS text; push
title and body; an optional link. It becomes one Jinja source with the catalog's block
names, so the same sandboxed renderer, layouts, SMS policy and warnings apply to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

# Plain part names per channel → the catalog block each one fills.
PARTS: dict[str, dict[str, str]] = {
    "email": {"subject": "subject", "heading": "heading", "body": "body",
              "button": "cta_label"},
    "sms": {"text": "sms"},
    "push": {"title": "push_title", "body": "push_body"},
}
# The push copy is also the app's: its notification reuses the push blocks, its inbox
# entry gets the same title and text.
ALSO_FILLS = {"push_title": "inbox_title", "push_body": "inbox_body"}
# The optional link lands in the push URL and the e-mail button.
URL_BLOCKS = ("push_url", "cta_url")
# Block structure is ours: a part that opened or closed blocks, or extended another
# template, could reshape the set.
_STRUCTURE = re.compile(r"{%-?\s*(block|endblock|extends)\b")


class InlineSource(Protocol):
    """Where the renderer finds template sets that are not catalog files."""

    def stems(self, key: str) -> Mapping[str, str] | None:
        """File stem (`<locale>`) → Jinja source of the set `key`; None if unknown."""


def check_part(text: str) -> None:
    """Raises ValueError if a part would change the set's block structure."""
    if _STRUCTURE.search(text):
        raise ValueError("block, endblock and extends tags are not allowed in a part")


def compose(parts: Mapping[str, Mapping[str, str]], url: str | None = None) -> str:
    """One locale's Jinja source from its parts (channel → part name → text)."""
    out = []
    for channel, names in PARTS.items():
        for name, block in names.items():
            text = (parts.get(channel) or {}).get(name)
            if text is not None:
                check_part(text)
                for filled in (block, ALSO_FILLS.get(block)):
                    if filled:
                        out.append(f"{{% block {filled} %}}{text}{{% endblock %}}")
    if url:
        check_part(url)
        out += [f"{{% block {block} %}}{url}{{% endblock %}}" for block in URL_BLOCKS]
    return "\n".join(out)


class FixedSource:
    """An in-memory source (previews of a set before it is stored)."""

    def __init__(self, sets: Mapping[str, Mapping[str, str]]) -> None:
        self.sets = sets

    def stems(self, key: str) -> Mapping[str, str] | None:
        return self.sets.get(key)
