"""Any Apprise URL (Slack, Teams, e-mail, json://...): a catch-all channel and ops alerts.

Apprise answers only True/False, so the adapter captures what Apprise logs during the call
and returns it as the error detail; an HTTP status found in that log
is classified by ERRORS. Crash reconciliation: Apprise targets keep no queryable record,
so `reconcile` returns None.
"""

from __future__ import annotations

import logging
import re
import threading

import apprise

from channels.base import OutgoingMessage, SendResult
from channels.errors import PERMANENT, TRANSIENT, ConfigurationError, ErrorTable

# Statuses that Apprise plugins report in their log lines ("...error=404.").
ERRORS = ErrorTable({400: PERMANENT, 404: PERMANENT, 410: PERMANENT, 429: TRANSIENT})
_STATUS = re.compile(r"error(?:=| code:? ?)(\d{3})")


class _LogCapture(logging.Handler):
    """Collects Apprise's warning lines while one notify call is in progress.

    Apprise dispatches from its own executor threads, so lines cannot be told apart by
    thread: calls that capture are serialised by `serial` (Apprise is for ops alerts and a
    catch-all channel, not bulk traffic).
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.serial = threading.Lock()
        self.lines: list[str] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.lines is not None:
            self.lines.append(record.getMessage())


_CAPTURE = _LogCapture()
_apprise_log = logging.getLogger("apprise")
_apprise_log.addHandler(_CAPTURE)
if _apprise_log.level == logging.NOTSET or _apprise_log.level > logging.WARNING:
    _apprise_log.setLevel(logging.WARNING)


class AppriseAdapter:
    """Notifies the configured URLs, or the message's own address when it is an Apprise URL."""

    name = "apprise"

    def __init__(self, urls: list[str]) -> None:
        self.urls = list(urls)
        self.default = self._target(self.urls) if self.urls else None

    @staticmethod
    def _target(urls: list[str]) -> apprise.Apprise:
        target = apprise.Apprise()
        for url in urls:
            if not target.add(url):
                raise ConfigurationError(f"apprise: HUB_APPRISE_URLS has an invalid URL "
                                         f"({url.split('://', 1)[0]}://...)")
        return target

    def notify(self, title: str, body: str, target: apprise.Apprise | None = None) -> SendResult:
        """Sends one notice; the result's error carries what Apprise logged."""
        target = target or self.default
        if target is None:
            return SendResult.permanent("apprise: no URL configured")
        with _CAPTURE.serial:
            lines: list[str] = []
            _CAPTURE.lines = lines
            try:
                ok = target.notify(body=body or title, title=title)
            except Exception as exc:  # a plugin bug must not escape the adapter
                return SendResult.transient(f"apprise: {type(exc).__name__}: {exc}; {lines}")
            finally:
                _CAPTURE.lines = None
        if ok:
            return SendResult.sent(f"apprise:{len(target)}")
        detail = " | ".join(lines) or "apprise: notification failed (nothing logged)"
        status = _STATUS.search(detail)
        return ERRORS.result(int(status.group(1)) if status else None, None, detail)

    def send(self, message: OutgoingMessage) -> SendResult:
        """Title/subject and body from the rendered parts."""
        parts = message.parts
        target = None
        if "://" in message.address:
            try:
                target = self._target([message.address])
            except ConfigurationError as exc:
                return SendResult.permanent(str(exc), deactivate=True)
        title = parts.get("title") or parts.get("subject") or ""
        body = parts.get("body") or parts.get("text") or ""
        result = self.notify(title, body, target)
        if result.ok:
            return SendResult.sent(f"apprise:{message.idempotency_key}")
        return result

    def reconcile(self, idempotency_key: str) -> SendResult | None:
        """Apprise targets keep no queryable record (module doc)."""
        return None
