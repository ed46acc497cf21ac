"""Operations alerts through Apprise (Slack, Teams, e-mail...): dead letters and outages."""

from __future__ import annotations

from channels.apprise_notify import AppriseAdapter
from hub.logs import get_logger, mask_text
from hub.settings import Settings

log = get_logger("alerts")


class OpsAlerts:
    """Sends short operator notices to HUB_APPRISE_URLS; does nothing when none are set."""

    def __init__(self, adapter: AppriseAdapter | None) -> None:
        self.adapter = adapter

    @classmethod
    def from_settings(cls, settings: Settings) -> OpsAlerts:
        return cls(AppriseAdapter(settings.apprise_urls) if settings.apprise_urls else None)

    def notify(self, title: str, body: str) -> None:
        """Best effort: an alert failure is logged, never raised into the worker."""
        if self.adapter is None:
            return
        result = self.adapter.notify(title, mask_text(body))
        if not result.ok:
            log.warning("ops_alert_failed", error=result.error)

    def dead_letter(self, job_id: int, event_pk: int, reason: str) -> None:
        """A job gave up: someone should look at it."""
        self.notify("Parcel Hub: dead letter",
                    f"Outbox job {job_id} (event #{event_pk}) was dead-lettered: {reason}")

    def circuit_opened(self, provider: str) -> None:
        """A provider looks down; its messages are being deferred."""
        self.notify("Parcel Hub: provider outage",
                    f"Circuit breaker for {provider} opened; its messages are deferred.")
