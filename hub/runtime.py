"""The composition root: builds the store, stages, pipeline and worker from settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import inspect

from channels import ChannelAdapter
from hub import migrate, transports
from hub.alerts import OpsAlerts
from hub.db import Database
from hub.keys import KeyVerifier
from hub.pipeline import Pipeline, Stages
from hub.settings import Settings
from hub.worker import Worker
from templates import Renderer
from throttling import AllowAll

LOGICAL_CHANNELS = ("sms", "email", "push")


def build_transports(settings: Settings) -> dict[str, ChannelAdapter]:
    """Maps each logical channel to the adapter that carries it (console until configured)."""
    return transports.build(settings)


def build_stages(settings: Settings) -> Stages:
    return Stages(limiter=AllowAll(), renderer=Renderer(), transports=build_transports(settings))


@dataclass
class HubRuntime:
    """Everything a running hub process holds."""

    settings: Settings
    db: Database
    pipeline: Pipeline
    verifier: KeyVerifier
    worker: Worker | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, migrate_empty: bool = True) -> HubRuntime:
        db = Database(settings.database_url)
        if migrate_empty and not inspect(db.engine).has_table("alembic_version"):
            migrate.upgrade(db)
        pipeline = Pipeline(db, build_stages(settings))
        return cls(settings, db, pipeline, KeyVerifier(db))

    def start_worker(self) -> Worker:
        """Starts the embedded worker thread."""
        self.worker = Worker(self.db, self.pipeline, self.settings,
                             alerts=OpsAlerts.from_settings(self.settings))
        self._thread = self.worker.start_thread()
        return self.worker

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.db.dispose()
