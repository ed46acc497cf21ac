"""Which provider adapter carries each logical channel, from settings.

A logical channel (sms, email, push; fcm and apns for the app's devices) uses its provider
once that provider's credentials are set, otherwise the console adapter (the embedded default
and the demo need no service). Each provider adapter is wrapped in its own circuit breaker.
"""

from __future__ import annotations

from typing import Any

from channels import ChannelAdapter
from channels.breaker import BreakerPolicy, CircuitBreaker, GuardedAdapter
from channels.registry import adapter_classes
from hub.alerts import OpsAlerts
from hub.settings import Settings

STATUS_CALLBACK_PATH = "/v1/webhooks/twilio/status"
INBOUND_PATH = "/v1/webhooks/twilio/inbound"


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


def _sms(settings: Settings, classes: dict[str, Any]) -> ChannelAdapter | None:
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return None
    from channels.twilio_sms import make_client

    client = make_client(settings.twilio_account_sid, _secret(settings.twilio_auth_token),
                         settings.twilio_api_base_url, settings.provider_timeout_seconds,
                         settings.send_concurrency)
    callback = settings.public_base_url.rstrip("/") + STATUS_CALLBACK_PATH
    adapter: ChannelAdapter = classes["twilio"](client, settings.twilio_from or "", callback)
    return adapter


def _email(settings: Settings, classes: dict[str, Any]) -> ChannelAdapter | None:
    choice = settings.email_provider or (
        "sendgrid" if settings.sendgrid_api_key else "smtp" if settings.smtp_url else "console")
    if choice == "sendgrid":
        from channels.sendgrid_email import make_client as sendgrid_client

        client = sendgrid_client(_secret(settings.sendgrid_api_key), settings.sendgrid_api_host,
                                 settings.provider_timeout_seconds)
        adapter: ChannelAdapter = classes["sendgrid"](client, settings.email_from,
                                                      settings.provider_timeout_seconds)
        return adapter
    if choice == "smtp":
        from channels.smtp_email import SmtpSettings

        smtp = SmtpSettings.from_url(settings.smtp_url or "", settings.provider_timeout_seconds)
        adapter = classes["smtp"](smtp, settings.email_from)
        return adapter
    return None


def _push(settings: Settings, classes: dict[str, Any]) -> ChannelAdapter | None:
    if settings.vapid_private_key is None:
        return None
    adapter: ChannelAdapter = classes["webpush"](
        _secret(settings.vapid_private_key), settings.vapid_subject,
        ttl=settings.push_ttl_seconds, timeout=settings.provider_timeout_seconds,
        allowed_hosts=settings.push_allowed_hosts)
    return adapter


def _fcm(settings: Settings, classes: dict[str, Any]) -> ChannelAdapter | None:
    if not settings.fcm_service_account_file:
        return None
    adapter: ChannelAdapter = classes["fcm"].from_service_account_file(
        settings.fcm_service_account_file, settings.fcm_api_base_url,
        timeout=settings.provider_timeout_seconds, default_ttl=settings.push_ttl_seconds)
    return adapter


def _apns(settings: Settings, classes: dict[str, Any]) -> ChannelAdapter | None:
    if not (settings.apns_key_file and settings.apns_key_id and settings.apns_team_id):
        return None
    adapter: ChannelAdapter = classes["apns"].from_key_file(
        settings.apns_key_file, settings.apns_key_id, settings.apns_team_id,
        settings.apns_base_url, timeout=settings.provider_timeout_seconds,
        default_ttl=settings.push_ttl_seconds)
    return adapter


def guard(adapter: ChannelAdapter, settings: Settings) -> ChannelAdapter:
    """The adapter behind its provider's circuit breaker."""
    policy = BreakerPolicy(settings.breaker_threshold, settings.breaker_cooldown_seconds,
                           settings.breaker_max_cooldown_seconds)
    alerts = OpsAlerts.from_settings(settings)
    return GuardedAdapter(adapter, CircuitBreaker(policy), on_open=alerts.circuit_opened)


def build(settings: Settings) -> dict[str, ChannelAdapter]:
    """Logical channel → adapter (console where no provider is configured)."""
    classes = adapter_classes()
    console: ChannelAdapter = classes["console"](settings.console_outbox_path)
    transports: dict[str, ChannelAdapter] = {}
    # "fcm" and "apns" are the providers behind the app_push channel, picked per device
    for channel, build_one in (("sms", _sms), ("email", _email), ("push", _push),
                               ("fcm", _fcm), ("apns", _apns)):
        adapter = build_one(settings, classes)
        transports[channel] = guard(adapter, settings) if adapter is not None else console
    if settings.apprise_urls:
        transports["apprise"] = guard(classes["apprise"](settings.apprise_urls), settings)
    return transports


def push_public_key(settings: Settings) -> str | None:
    """The applicationServerKey browsers need, derived from the private key if not set."""
    if settings.vapid_public_key:
        return settings.vapid_public_key
    if settings.vapid_private_key is None:
        return None
    from py_vapid import Vapid

    from channels.webpush import public_key_of

    return public_key_of(Vapid.from_string(_secret(settings.vapid_private_key)))
