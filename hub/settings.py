"""Runtime configuration, read from `HUB_*` environment variables and an optional `.env` file."""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from channels.push_endpoints import DEFAULT_PUSH_HOSTS

_DEV_SECRET = "dev-insecure-change-me"


class Settings(BaseSettings):
    """Every knob of the hub; defaults give the embedded mode (SQLite, in-process worker)."""

    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{Path.cwd() / 'hub.db'}",
        description="SQLAlchemy URL; SQLite file in the working directory by default.",
    )
    broker_url: str | None = Field(
        default=None, description="amqp:// or redis:// to deliver on dramatiq; unset = embedded."
    )
    broker_queue: str = Field(default="hub-jobs", description="dramatiq queue of the jobs.")
    redis_url: str | None = Field(default=None, description="Redis for throttling counters.")
    public_base_url: str = Field(
        default="http://127.0.0.1:8000", description="Base of links put into messages."
    )
    secret_key: SecretStr = Field(
        default=SecretStr(_DEV_SECRET),
        description="Signs preference-center and unsubscribe links.",
    )
    embedded_worker: bool = Field(default=True, description="Run the worker inside `hub serve`.")
    worker_poll_seconds: float = Field(default=0.2, description="Idle poll interval.")
    worker_lease_seconds: float = Field(default=60.0, description="Claim lease; reclaimed after.")
    worker_batch: int = Field(default=20, description="Outbox rows claimed per poll.")
    send_concurrency: int = Field(default=64, ge=1, le=1024,
                                  description="Provider calls in flight per worker process.")
    max_attempts: int = Field(default=8, description="Attempts before a dead letter.")
    retry_base_seconds: float = Field(default=2.0, description="First retry delay.")
    retry_max_seconds: float = Field(default=600.0, description="Longest retry delay.")
    max_body_bytes: int = Field(default=1024 * 1024, description="Largest request body.")
    console_outbox_path: str = Field(
        default="outbox/console.jsonl", description="Where the console channel writes messages."
    )
    # Provider credentials: an adapter is enabled once its credentials are set.
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    sendgrid_api_key: SecretStr | None = None
    smtp_url: str | None = None
    email_from: str = "Parcel Hub <no-reply@parcelhub.example>"
    vapid_private_key: SecretStr | None = None
    vapid_public_key: str | None = None
    vapid_subject: str = "mailto:ops@parcelhub.example"
    apprise_urls: list[str] = Field(default_factory=list)
    # templates: brand in the e-mail layout, links in messages, SMS transliteration policy.
    templates_brand_name: str = "Parcel Hub"
    templates_brand_color: str = Field(default="#d4001a", pattern=r"^#[0-9a-fA-F]{6}$")
    templates_brand_text_color: str = Field(default="#ffffff", pattern=r"^#[0-9a-fA-F]{6}$")
    templates_brand_logo_url: str | None = None
    templates_footer_address: str = "Parcel Hub sp. z o.o., ul. Prosta 20, 00-850 Warszawa"
    templates_help_url: str = "https://parcelhub.example/help"
    templates_preference_url: str | None = Field(
        default=None, description="Preference link in previews and test sends (real messages "
        "carry the customer's signed /p/<token> link); unset = {public_base_url}/preferences.")
    templates_sms_transliteration: Literal["off", "always", "over_budget"] = Field(
        default="over_budget", description="Fold Polish diacritics to stay in GSM-7: never, "
        "always, or only when the UCS-2 text exceeds the template's segment budget.")
    # --- preferences (issue 4): GDPR retention and signed customer links ---
    retention_days: int = Field(
        default=90, ge=1, description="Rendered bodies and event payloads older than this are "
        "purged (`hub purge`, and the worker once a day).")
    preference_link_days: int = Field(default=60, ge=1,
                                      description="How long a preference-center link works.")
    unsubscribe_link_days: int = Field(default=365, ge=1,
                                       description="How long an unsubscribe link works.")
    tombstone_key: SecretStr | None = Field(
        default=None, description="Keys the digests that remember erased customers; defaults "
        "to secret_key. Keep it stable: changing it forgets who was erased.")
    # --- channels (issue 6): provider endpoints, receipts, delivery protection ---
    twilio_api_base_url: str | None = Field(
        default=None, description="Replaces https://api.twilio.com (test fakes, proxies).")
    sendgrid_api_host: str | None = Field(
        default=None, description="Replaces https://api.sendgrid.com (test fakes, EU host).")
    sendgrid_webhook_public_key: str | None = Field(
        default=None, description="Event Webhook verification key (base64 DER, as shown).")
    webhook_max_age_seconds: float = Field(
        default=300.0, description="Signed webhooks older than this are replays: rejected.")
    provider_timeout_seconds: float = Field(default=10.0, description="Per provider call.")
    push_ttl_seconds: int = Field(default=86400, description="How long a push may wait.")
    email_provider: str | None = Field(
        default=None, description="sendgrid|smtp|console; unset = sendgrid if keyed, else "
        "smtp if HUB_SMTP_URL is set, else console.")
    breaker_threshold: int = Field(default=5, description="Transient failures that open it.")
    breaker_cooldown_seconds: float = Field(default=10.0, description="First open period.")
    breaker_max_cooldown_seconds: float = Field(default=300.0, description="Longest one.")
    delivery_max_age_seconds: float = Field(
        default=86400.0, description="A job still failing this long after intake dead-letters.")

    # throttling: counter backend, policy file, Redis key prefix (HUB_REDIS_URL above).
    throttle_backend: Literal["sql", "redis", "memory", "off"] = Field(
        default="sql", description="Counters: sql (the hub's database), redis, memory, off."
    )
    throttle_policy_file: str | None = Field(
        default=None, description="Throttling policy TOML; the packaged default when unset."
    )
    throttle_redis_prefix: str = Field(
        default="hub:throttle:", description="Key prefix of the Redis counters."
    )
    throttle_sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL", description="fsync of the SQLite counters (events stay FULL)."
    )
    # --- issue 11: unsubscribe undo, template test-sends, marketer page sessions ---
    unsubscribe_undo_minutes: int = Field(
        default=30, ge=1, le=1440, description="How long the one-time undo offered after an "
        "unsubscribe works (the unsubscribe link itself never grants consent).")
    test_recipients: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Addresses any template test-send may reach: phones "
        "and e-mails, comma-separated or a JSON list.")
    test_recipients_by_tenant: dict[str, list[str]] = Field(
        default_factory=dict, description='Further test-send addresses per tenant, JSON: '
        '{"tenant": ["+48...", "qa@..."]}.')
    test_send_per_minute: int = Field(default=10, ge=1, description="Test-sends per key/min.")
    test_send_per_day: int = Field(default=100, ge=1, description="Test-sends per key/day.")
    ui_session_hours: float = Field(default=8.0, gt=0, le=720,
                                    description="Lifetime of a marketer page login.")
    cookie_secure: bool | None = Field(
        default=None, description="Secure flag of the login cookie; unset = only when the "
        "request came over https (set true behind a TLS-terminating proxy).")
    # --- issue 15: delivery feedback links, outgoing webhooks ---
    feedback_link_days: int = Field(default=30, ge=1, le=365,
                                    description="How long a feedback rating link works.")
    webhooks_allow_loopback: bool = Field(
        default=False, description="Accept http:// loopback webhook endpoint URLs (tests and "
        "local development only; production needs https to a public address).")
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60,
                                           description="Per outgoing webhook request.")
    webhook_retry_hours: float = Field(
        default=24.0, gt=0, description="How long a webhook message is retried (exponential "
        "backoff) before it is given up.")
    webhook_disable_after_failures: int = Field(
        default=100, ge=1, description="Consecutive failed attempts that disable an endpoint.")
    webhook_disable_after_hours: float = Field(
        default=24.0, gt=0, description="An endpoint failing without a success this long is "
        "disabled (with an ops alert).")

    # --- issue 13: tracked links, conversions, e-mail opens ---
    conversion_window_days: int = Field(
        default=7, ge=1, le=90, description="A conversion is credited to the customer's last "
        "click this many days before it at most.")
    email_open_pixel: bool = Field(
        default=False, description="Add a 1x1 open pixel to campaign and loyalty e-mails. "
        "Unreliable: Apple Mail Privacy Protection fetches every image (false opens) and "
        "blocked images hide real ones; provider open events are used either way.")

    @field_validator("test_recipients", mode="before")
    @classmethod
    def _split_recipients(cls, value: object) -> object:
        """Accepts a JSON list or a comma-separated string."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    # --- provider rate limits (issue 12 item 4): messages/s per provider and sender ---
    twilio_mps: float | None = Field(default=None, gt=0, description="Twilio messages/s per "
                                     "sender (From number / sender id); unset = unlimited.")
    sendgrid_mps: float | None = Field(default=None, gt=0, description="SendGrid messages/s.")
    smtp_mps: float | None = Field(default=None, gt=0, description="SMTP messages/s.")
    webpush_mps: float | None = Field(default=None, gt=0, description="Web push messages/s.")
    apprise_mps: float | None = Field(default=None, gt=0, description="Apprise messages/s.")
    rate_limit_senders: dict[str, float] = Field(
        default_factory=dict, description='Per-sender overrides, JSON: {"twilio:+48500100200": 1}.')
    rate_limit_burst: int = Field(default=1, ge=1, description="Messages a bucket may send back "
                                  "to back after a pause (1: evenly spaced).")
    rate_limit_backend: Literal["auto", "memory", "redis"] = Field(
        default="auto", description="Buckets in this process, or shared in Redis; auto = redis "
        "when HUB_REDIS_URL is set.")
    rate_limit_redis_prefix: str = Field(default="hub:rate:", description="Redis key prefix.")
    rate_limit_max_wait_seconds: float = Field(
        default=10.0, ge=0, description="A send whose next slot is further away is deferred "
        "(not attempted, no attempt counted) instead of holding its job.")
    # --- automation (issue 15 items 1, 2): event types, templates and follow-up rules ---
    event_types_file: str | None = Field(
        default=None, description="TOML of extra event types (adds to or overrides "
        "hub/event_types.toml); validated at startup.")
    templates_dir: str | None = Field(
        default=None, description="A catalog directory whose templates add to or override the "
        "packaged ones (same layout: <event type>/<locale>[.<tone>].j2, budgets.toml).")
    followup_rules_file: str | None = Field(
        default=None, description="Follow-up rules TOML; the packaged default when unset.")
    followups_disabled: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Rule names to switch off, comma-separated.")
    followup_poll_seconds: float = Field(default=1.0, gt=0, le=60,
                                         description="How often due timers are looked for.")

    @field_validator("followups_disabled", mode="before")
    @classmethod
    def _split_rules(cls, value: object) -> object:
        """A comma-separated list of rule names."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    # --- hardening (issue 11): where push may go ---
    push_allowed_hosts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PUSH_HOSTS),
        description="Push services the hub posts to (JSON list): host names, `*.domain` for "
        "sub-domains (https only), or a full origin such as http://127.0.0.1:8765 to admit a "
        "local push service explicitly. Anything else, and any name resolving to a private "
        "address, is refused.")
    log_level: str = "INFO"
    log_json: bool = True

    @property
    def send_window_seconds(self) -> float:
        """The longest a send record may rightly stay `sending`: the wait for a rate-limit
        slot plus one provider call, with a margin. A younger record may belong to a call
        still in flight (not reconciled yet); an erasure waits this long for it."""
        return self.rate_limit_max_wait_seconds + self.provider_timeout_seconds + 5.0

    @property
    def uses_dev_secret(self) -> bool:
        return self.secret_key.get_secret_value() == _DEV_SECRET


class DevSecretRefused(RuntimeError):
    """The development secret on a setup others can reach; the message says what to do."""


def _loopback(host: str | None) -> bool:
    if not host or host.lower().rstrip(".") == "localhost":
        return True  # no host: a Unix socket or the driver's local default
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def exposure(settings: Settings, bind_host: str | None = None) -> str | None:
    """Why this setup is reachable from other machines, or None for a loopback-only one.

    The secret signs preference-center and unsubscribe links (anyone who knows it can change
    anyone's consent) and keys the erased-customer digests. It matters once a link leaves the
    machine (a public base URL), once the API listens beyond loopback, or once the store or
    broker is a shared server elsewhere (other processes, other machines, real customers).
    A SQLite file, loopback services and loopback URLs are the demo and the tests.
    """
    checks = [("HUB_PUBLIC_BASE_URL", urlsplit(settings.public_base_url).hostname),
              ("the listen address", bind_host)]
    for name, url in (("HUB_DATABASE_URL", settings.database_url),
                      ("HUB_BROKER_URL", settings.broker_url)):
        if url and not url.startswith("sqlite"):
            checks.append((name, urlsplit(url).hostname))
    for name, host in checks:
        if host is not None and not _loopback(host):
            return f"{name} names {host}, which is not loopback"
    return None


def refuse_dev_secret(settings: Settings, bind_host: str | None = None) -> None:
    """Raises DevSecretRefused when the development secret meets a non-loopback setup; every
    process (`hub serve` and its API workers, `hub worker` with its consumers and relay)
    calls this before it starts."""
    why = exposure(settings, bind_host)
    if settings.uses_dev_secret and why:
        raise DevSecretRefused(
            f"refusing to start with the development HUB_SECRET_KEY: {why}. Set HUB_SECRET_KEY "
            "to a random value (python -c 'import secrets; print(secrets.token_urlsafe(32))') "
            "and keep it: it signs customers' links.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
