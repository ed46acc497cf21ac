"""The composition root: builds the store, stages, pipeline and worker from settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import inspect

from channels import ChannelAdapter
from channels.ratelimit import build_rate_limiter
from hub import migrate, transports
from hub.alerts import OpsAlerts
from hub.campaigns.copy import CampaignTemplates
from hub.campaigns.runner import start_loop as start_campaigns  # campaign runner
from hub.customers import tombstone_key
from hub.db import Database, make_engine
from hub.event_catalog import template_overlays  # configured templates (issue 15)
from hub.followups.firing import start_loop as start_followups  # follow-up timers
from hub.inbox_channel import InboxAdapter
from hub.intake import GroupIntake
from hub.keys import KeyVerifier
from hub.links import message_links
from hub.pipeline import Pipeline, Stages
from hub.settings import Settings
from hub.webhook_sender import start_webhook_sender
from hub.worker import Worker
from templates import Brand, Renderer, Transliteration
from throttling import (
    AllowAll,
    CounterStore,
    Limiter,
    MemoryCounterStore,
    PolicyLimiter,
    load_policy,
)
from throttling.backends.redis import RedisCounterStore
from throttling.backends.sql import SqlCounterStore
from throttling.backends.sql_digest import SqlDigestBook

if TYPE_CHECKING:  # imported lazily: dramatiq is only needed with a broker
    from hub.dispatch import Dispatcher

LOGICAL_CHANNELS = ("sms", "email", "push")


def build_transports(settings: Settings) -> dict[str, ChannelAdapter]:
    """Maps each logical channel to the adapter that carries it (console until configured)."""
    return transports.build(settings)


def build_limiter(settings: Settings, db: Database) -> Limiter:
    """The throttling limiter chosen by HUB_THROTTLE_BACKEND (digest items always in the db)."""
    if settings.throttle_backend == "off":
        return AllowAll()
    policy = load_policy(settings.throttle_policy_file)
    if settings.throttle_backend == "redis":
        if not settings.redis_url:
            raise ValueError("HUB_THROTTLE_BACKEND=redis needs HUB_REDIS_URL")
        prefix = settings.throttle_redis_prefix
        store: CounterStore = RedisCounterStore.from_url(settings.redis_url, prefix)
    elif settings.throttle_backend == "memory":
        store = MemoryCounterStore()
    else:
        # Its own pool, so that relaxing SQLite's fsync for counters leaves events durable.
        store = SqlCounterStore(make_engine(settings.database_url), owns_engine=True,
                                sqlite_synchronous=settings.throttle_sqlite_synchronous,
                                write_lock=db.write_lock)
    return PolicyLimiter(policy, store, SqlDigestBook(db.engine, write_lock=db.write_lock))


def build_renderer(settings: Settings, db: Database | None = None) -> Renderer:
    """The template renderer with the brand and SMS policy from settings; with the store,
    it also renders campaign variants' copy (issue 13)."""
    brand = Brand(
        name=settings.templates_brand_name, color=settings.templates_brand_color,
        text_color=settings.templates_brand_text_color,
        logo_url=settings.templates_brand_logo_url,
        footer_address=settings.templates_footer_address, help_url=settings.templates_help_url,
        preference_url=settings.templates_preference_url
        or f"{settings.public_base_url.rstrip('/')}/preferences",
    )
    return Renderer(transliteration=Transliteration(settings.templates_sms_transliteration),
                    brand=brand, links=partial(message_links, settings),
                    overlays=template_overlays(settings),  # configured templates (issue 15)
                    inline=CampaignTemplates(db) if db is not None else None)


def build_stages(settings: Settings, db: Database) -> Stages:
    # The inbox channel's provider is the hub's own store (hub/inbox_channel.py).
    return Stages(limiter=build_limiter(settings, db), renderer=build_renderer(settings, db),
                  transports={**build_transports(settings), "inbox": InboxAdapter(db)})


@dataclass
class HubRuntime:
    """Everything a running hub process holds."""

    settings: Settings
    db: Database
    pipeline: Pipeline
    verifier: KeyVerifier
    worker: Worker | None = None
    dispatcher: Dispatcher | None = None
    intake: GroupIntake = field(init=False)  # the API's group commit of posted events
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.intake = GroupIntake(self.db)

    @classmethod
    def build(cls, settings: Settings, migrate_empty: bool = True) -> HubRuntime:
        db = Database(settings.database_url)
        if migrate_empty and not inspect(db.engine).has_table("alembic_version"):
            migrate.upgrade(db)
        pipeline = Pipeline(db, build_stages(settings, db), tombstone_key(settings),
                            record_secret=settings.secret_key.get_secret_value(),
                            alerts=OpsAlerts.from_settings(settings),
                            rate_limiter=build_rate_limiter(settings))
        return cls(settings, db, pipeline, KeyVerifier(db))

    def start_worker(self) -> None:
        """Starts the embedded worker thread, or with a broker configured, the outbox relay
        that publishes jobs to dramatiq actors (`hub worker`)."""
        start_webhook_sender(self.db, self.settings, lambda: self._thread)  # outgoing webhooks
        if self.settings.broker_url:
            from hub.dispatch import Dispatcher, make_broker

            self.dispatcher = Dispatcher(self.db, self.pipeline, self.settings,
                                         make_broker(self.settings.broker_url))
            self._thread = self.dispatcher.start_relay()
        else:
            self.worker = Worker(self.db, self.pipeline, self.settings)
            self._thread = self.worker.start_thread()
        self.followups = start_followups(self)  # follow-up timers
        self.campaigns = start_campaigns(self)  # campaign runner (issue 13)

    def stop(self) -> None:
        if getattr(self, "followups", None) is not None:  # follow-up timers
            self.followups.stop()
        if getattr(self, "campaigns", None) is not None:  # campaign runner
            self.campaigns.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.worker is not None:
            self.worker.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.pipeline.rate_limiter is not None:
            self.pipeline.rate_limiter.close()
        close_limiter = getattr(self.pipeline.stages.limiter, "close", None)
        if close_limiter is not None:
            close_limiter()
        self.db.dispose()
