"""The SSRF check of outgoing webhook endpoint URLs (a small check of its own, to be unified
with the push-endpoint guard): https to public addresses only; plain http to a loopback
address only when HUB_WEBHOOKS_ALLOW_LOOPBACK is set (tests, local development).

It runs when an endpoint is registered and again before every delivery attempt, so a name
that later resolves to a private address is refused then too.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class WebhookUrlRefused(ValueError):
    """The URL may not receive webhooks; the message says why (safe to show)."""


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookUrlRefused(f"the host {host!r} does not resolve") from exc
    return [ipaddress.ip_address(info[4][0]) for info in infos]


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
    loopback = all(a.is_loopback for a in found)
    if loopback and allow_loopback:
        return
    if parts.scheme != "https":
        raise WebhookUrlRefused("the URL must use https")
    for address in found:
        if not address.is_global or address.is_multicast:
            raise WebhookUrlRefused(
                "the URL resolves to a private, loopback or reserved address")
