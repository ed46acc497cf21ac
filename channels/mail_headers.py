"""Headers shared by the e-mail adapters (RFC 2369 List-Unsubscribe, RFC 8058 one-click)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def list_unsubscribe_headers(metadata: Mapping[str, Any]) -> dict[str, str]:
    """List-Unsubscribe (+ one-click Post) from `unsubscribe_url` / `unsubscribe_mailto`.

    The URL comes from the preferences' unsubscribe-link builder through the message
    metadata; without one no header is set (transactional mail may have none).
    """
    targets = []
    url = metadata.get("unsubscribe_url")
    if url:
        targets.append(f"<{url}>")
    mailto = metadata.get("unsubscribe_mailto")
    if mailto:
        targets.append(f"<{mailto if str(mailto).startswith('mailto:') else 'mailto:' + mailto}>")
    if not targets:
        return {}
    headers = {"List-Unsubscribe": ", ".join(targets)}
    if url and str(url).startswith("https://"):
        # RFC 8058 requires an HTTPS URI for one-click; plain http gets only the link.
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers
