"""The SSRF check of outgoing webhook endpoint URLs: https to public addresses only (the
same notion of "internal address" as the push-endpoint guard, `channels.push_endpoints`);
plain http to a loopback address only when HUB_WEBHOOKS_ALLOW_LOOPBACK is set (tests,
local development).

It runs when an endpoint is registered and again before every delivery attempt, so a name
that later resolves to a private address is refused then too.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from channels.push_endpoints import is_internal, resolve


class WebhookUrlRefused(ValueError):
    """The URL may not receive webhooks; the message says why (safe to show)."""


def _addresses(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]  # a literal address
    except ValueError:
        pass
    try:
        return resolve(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookUrlRefused(f"the host {host!r} does not resolve") from exc


def check_webhook_url(url: str, allow_loopback: bool) -> None:
    """Raises WebhookUrlRefused unless the URL is https to public addresses (or, with
    `allow_loopback`, http/https to a loopback address)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise WebhookUrlRefused("not a valid URL") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WebhookUrlRefused("the URL must be https://host/...")
    if parts.username or parts.password:
        raise WebhookUrlRefused("the URL must not carry credentials")
    found = _addresses(parts.hostname, port)
    loopback = all(ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in found)
    if loopback and allow_loopback:
        return
    if parts.scheme != "https":
        raise WebhookUrlRefused("the URL must use https")
    if not found or any(is_internal(a) for a in found):
        raise WebhookUrlRefused("the URL resolves to a private, loopback or reserved address")
