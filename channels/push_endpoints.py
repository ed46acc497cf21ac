"""Which Web Push endpoints the hub will ever POST to: known push services only (no SSRF).

A push subscription's endpoint is a URL the client hands us and the worker later POSTs to.
Unchecked, it makes the hub a request forwarder into its own network (metadata services,
admin ports on loopback, the database). The rules:

- the endpoint's host must match the allow-list (`HUB_PUSH_ALLOWED_HOSTS`): host names,
  where `*.example.com` matches any sub-domain (not the apex), and https is required;
- an entry that is a full origin (`http://127.0.0.1:8765`) admits exactly that scheme, host
  and port: the way a test or a lab names its local push service, explicitly;
- a literal IP address, or a name that resolves to a loopback, private, link-local,
  multicast or reserved address, is refused unless its origin is listed explicitly. The
  resolution check runs at send time (`check_resolved`): it stops an allow-list entry whose
  DNS points inward (a mistake, or a rebinding name) from reaching internal services. It is
  a second layer; the host allow-list is the first, since nobody outside Google, Mozilla,
  Microsoft and Apple controls what their push hosts resolve to.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

DEFAULT_PUSH_HOSTS: tuple[str, ...] = (
    "fcm.googleapis.com",  # Chrome, Edge on Android, Opera, Brave, Samsung Internet
    "updates.push.services.mozilla.com",  # Firefox
    "*.notify.windows.com",  # Edge on Windows (WNS)
    "web.push.apple.com",  # Safari
    "*.push.apple.com",
)
# PushSubscription.expirationTime is milliseconds since the epoch; later than 2200 is junk.
MAX_EXPIRATION_MS = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp() * 1000)


class PushEndpointProblem(enum.StrEnum):
    """Why an endpoint (or its expiry) was refused."""

    MALFORMED = "malformed"
    NOT_HTTPS = "not_https"
    HOST_NOT_ALLOWED = "host_not_allowed"
    PRIVATE_ADDRESS = "private_address"
    UNRESOLVABLE = "unresolvable"
    EXPIRATION_OUT_OF_RANGE = "expiration_out_of_range"


class PushEndpointError(ValueError):
    """An endpoint the hub must not post to; `problem` says why."""

    def __init__(self, problem: PushEndpointProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


def _origin(scheme: str, host: str, port: int | None) -> str:
    default = {"https": 443, "http": 80}.get(scheme)
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" + (f":{port}" if port and port != default else "")


def _listed_origins(allowed: Sequence[str]) -> set[str]:
    origins = set()
    for entry in allowed:
        if "://" in entry:
            parts = urlsplit(entry.strip().lower())
            if parts.hostname:
                origins.add(_origin(parts.scheme, parts.hostname, parts.port))
    return origins


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """Whether a host name matches an entry (`name` exactly, `*.suffix` any sub-domain)."""
    host = host.lower().rstrip(".")
    for entry in (e.strip().lower() for e in allowed if "://" not in e):
        if entry.startswith("*."):
            if host.endswith(entry[1:]):  # ".suffix": a sub-domain, never the apex itself
                return True
        elif host == entry:
            return True
    return False


def is_internal(address: str) -> bool:
    """True for an address no outgoing request of the hub may reach: private, loopback,
    link-local, multicast, reserved or unspecified (IPv4-mapped IPv6 included)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(not ip.is_global or ip.is_private or ip.is_loopback or ip.is_link_local
                or ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def _literal_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def check_endpoint(endpoint: str, allowed: Sequence[str] = DEFAULT_PUSH_HOSTS) -> str:
    """The endpoint if the hub may post to it; else PushEndpointError (no network access)."""
    try:
        parts = urlsplit(endpoint.strip())
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError as exc:
        raise PushEndpointError(PushEndpointProblem.MALFORMED, "not a URL") from exc
    if not host or parts.username or parts.password:
        raise PushEndpointError(PushEndpointProblem.MALFORMED, "needs a host and no user info")
    if _origin(parts.scheme.lower(), host, port) in _listed_origins(allowed):
        return endpoint  # an origin the operator listed explicitly (a local fake, a lab)
    if parts.scheme.lower() != "https":
        raise PushEndpointError(PushEndpointProblem.NOT_HTTPS, "push endpoints must use https")
    if _literal_ip(host):
        problem = (PushEndpointProblem.PRIVATE_ADDRESS if is_internal(host)
                   else PushEndpointProblem.HOST_NOT_ALLOWED)
        raise PushEndpointError(problem, "push endpoints must name a push service, not an IP")
    if not host_allowed(host, allowed):
        raise PushEndpointError(PushEndpointProblem.HOST_NOT_ALLOWED,
                                f"{host} is not a known push service")
    return endpoint


Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address the name resolves to (the system resolver)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def check_resolved(endpoint: str, allowed: Sequence[str] = DEFAULT_PUSH_HOSTS,
                   resolver: Resolver = resolve) -> None:
    """At send time: the host must not resolve to an internal address (unless its origin is
    listed explicitly). Raises PushEndpointError."""
    check_endpoint(endpoint, allowed)
    parts = urlsplit(endpoint.strip())
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if _origin(parts.scheme.lower(), host, parts.port) in _listed_origins(allowed):
        return
    try:
        addresses = resolver(host, port)
    except OSError as exc:
        raise PushEndpointError(PushEndpointProblem.UNRESOLVABLE, f"{host} does not resolve") from exc
    if not addresses or any(is_internal(a) for a in addresses):
        raise PushEndpointError(PushEndpointProblem.PRIVATE_ADDRESS,
                                f"{host} resolves to an internal address")


def expiration(milliseconds: int | None) -> datetime | None:
    """PushSubscription.expirationTime (ms since the epoch) as an aware datetime."""
    if not milliseconds:  # null (no expiry), or 0 as some browsers send
        return None
    if not 0 <= milliseconds <= MAX_EXPIRATION_MS:
        raise PushEndpointError(PushEndpointProblem.EXPIRATION_OUT_OF_RANGE,
                                "expirationTime must be milliseconds between 1970 and 2200")
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


def check_subscription(endpoint: str, expiration_ms: int | None,
                       allowed: Sequence[str] = DEFAULT_PUSH_HOSTS) -> datetime | None:
    """Validates a new subscription (endpoint and expiry); returns its expiry. Raises
    PushEndpointError. This is what the API calls where subscriptions are added."""
    check_endpoint(endpoint, allowed)
    return expiration(expiration_ms)
