"""Keeps a process's renderer equal to the store's published template versions.

Every process (API, embedded worker, dramatiq workers) has its own renderer, shared by its
threads. Once per engine batch, inside the batch's load transaction, `refresh` reads the
per-tenant generations (one row per tenant that ever published); only a tenant whose
generation moved has its published sources read and compiled again. So a publish is used
by the next batch claimed in every process, and a batch with nothing new costs one small
read.
"""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session

from hub import template_versions
from hub.logs import get_logger
from templates import DraftTemplate, Renderer, RenderError

log = get_logger("templates")


def draft_label(template_id: str, number: int) -> str:
    """How a rendered message names the version it used (shown in the decision log)."""
    return f"draft:{template_id}@v{number}"


class PublishedTemplates:
    """The renderer's published sets, refreshed when a tenant's generation moves."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def refresh(self, session: Session) -> None:
        """Reloads the tenants whose generation changed since the last call."""
        current = template_versions.generations(session)
        if current == self._seen:
            return
        with self._lock:
            for tenant, generation in current.items():
                if self._seen.get(tenant) != generation:
                    self.renderer.publish(tenant, self._compiled(session, tenant))
            self._seen = current

    def _compiled(self, session: Session, tenant: str) -> list[DraftTemplate]:
        out = []
        for row in template_versions.published_sources(session, tenant):
            event_type, _, locale = row.template_id.partition(":")
            try:
                out.append(self.renderer.compile_draft(
                    event_type, locale, draft_label(row.template_id, row.number), row.source))
            except RenderError:  # checked when saved; a library upgrade could still break it
                log.error("published_template_broken", tenant=tenant,
                          template=row.template_id, version=row.number)
        return out
