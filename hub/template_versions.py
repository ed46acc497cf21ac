"""Template versions of a tenant: drafts saved from the page or the API, one published
version per template, rollback and return to the catalog files.

A template is the catalog's file unit, `<event type>:<locale>` (e.g.
`parcel.delivered:pl`): the blocks of every channel, switching tone on `formal`. History is
append-only: a rollback adds a new row with the older source. Every change of what is
published raises the tenant's generation in the same transaction (hub.published_templates).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from hub.db import utcnow
from hub.event_catalog import types_not_for
from hub.events import event_types
from hub.models import TemplateGeneration, TemplateVersion
from templates import DIGEST, LOCALES


class VersionState(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class VersionConflict(Exception):
    """The version is not in a state that allows the change (e.g. publishing an archived
    version: that is a rollback)."""


@dataclass(frozen=True, slots=True)
class TemplateRef:
    """A template id split into its event type and locale."""

    template_id: str
    event_type: str
    locale: str


def parse_template_id(tenant: str, template_id: str) -> TemplateRef | None:
    """The template behind `<event type>:<locale>`, if the tenant may use that event type;
    None for anything else (the API answers 404, as for another tenant's ids)."""
    event_type, sep, locale = template_id.partition(":")
    if not sep or locale not in LOCALES or len(template_id) > 80:
        return None
    if event_type != DIGEST and (event_type not in event_types()
                                 or types_not_for(tenant, [event_type])):
        return None
    return TemplateRef(template_id, event_type, locale)


def _rows(tenant: str, template_id: str) -> Select[TemplateVersion]:
    return select(TemplateVersion).where(TemplateVersion.tenant == tenant,
                                         TemplateVersion.template_id == template_id)


def versions(session: Session, tenant: str, template_id: str) -> list[TemplateVersion]:
    """Every version of a template, newest first."""
    return list(session.scalars(_rows(tenant, template_id)
                                .order_by(TemplateVersion.number.desc())))


def get_version(session: Session, tenant: str, template_id: str,
                number: int) -> TemplateVersion | None:
    """One version, or None (unknown number, or another tenant's)."""
    return session.scalar(_rows(tenant, template_id)
                          .where(TemplateVersion.number == number))


def published(session: Session, tenant: str, template_id: str) -> TemplateVersion | None:
    """The version the next render uses, or None (the catalog file serves)."""
    return session.scalar(_rows(tenant, template_id)
                          .where(TemplateVersion.state == VersionState.PUBLISHED))


def _add(session: Session, tenant: str, template_id: str, source: str, author: str,
         note: str | None, state: VersionState, restored_from: int | None = None
         ) -> TemplateVersion:
    """A new row numbered after the template's last (a concurrent save of the same number
    fails on the unique constraint and is retried by the caller)."""
    last = session.scalar(select(func.max(TemplateVersion.number))
                          .where(TemplateVersion.tenant == tenant,
                                 TemplateVersion.template_id == template_id))
    now = utcnow()
    row = TemplateVersion(tenant=tenant, template_id=template_id, number=(last or 0) + 1,
                          source=source, state=state, author=author, created_at=now,
                          note=note, restored_from=restored_from)
    if state is VersionState.PUBLISHED:
        row.published_by, row.published_at = author, now
    session.add(row)
    session.flush()
    return row


def save_draft(session: Session, tenant: str, template_id: str, source: str, author: str,
               note: str | None = None) -> TemplateVersion:
    """Stores a checked source as the template's next version, in state draft."""
    return _add(session, tenant, template_id, source, author, note, VersionState.DRAFT)


def _archive_published(session: Session, tenant: str, template_id: str, by: str) -> None:
    session.execute(update(TemplateVersion)
                    .where(TemplateVersion.tenant == tenant,
                           TemplateVersion.template_id == template_id,
                           TemplateVersion.state == VersionState.PUBLISHED)
                    .values(state=VersionState.ARCHIVED, archived_by=by, archived_at=utcnow()))


def _bump(session: Session, tenant: str) -> None:
    """Raises the tenant's generation (every process reloads its published set)."""
    changed = session.execute(update(TemplateGeneration)
                              .where(TemplateGeneration.tenant == tenant)
                              .values(generation=TemplateGeneration.generation + 1))
    if not getattr(changed, "rowcount", 0):
        session.add(TemplateGeneration(tenant=tenant, generation=1))
        session.flush()


def publish(session: Session, row: TemplateVersion, by: str) -> TemplateVersion:
    """Publishes a draft: the published version (if any) is archived, in one transaction."""
    if row.state != VersionState.DRAFT:
        raise VersionConflict(f"version {row.number} is {row.state}; only a draft can be "
                              "published (an older version comes back with rollback)")
    _archive_published(session, row.tenant, row.template_id, by)
    row.state, row.published_by, row.published_at = VersionState.PUBLISHED, by, utcnow()
    session.flush()
    _bump(session, row.tenant)
    return row


def rollback(session: Session, row: TemplateVersion, by: str) -> TemplateVersion:
    """Publishes an earlier version again as a new version copying its source."""
    if row.state != VersionState.ARCHIVED:
        raise VersionConflict(f"version {row.number} is {row.state}; rollback takes a "
                              "version that was published before (archived)")
    _archive_published(session, row.tenant, row.template_id, by)
    copy = _add(session, row.tenant, row.template_id, row.source, by, None,
                VersionState.PUBLISHED, row.number)
    _bump(session, row.tenant)
    return copy


def unpublish(session: Session, tenant: str, template_id: str, by: str) -> bool:
    """Returns the template to the catalog file; False when nothing was published."""
    if published(session, tenant, template_id) is None:
        return False
    _archive_published(session, tenant, template_id, by)
    _bump(session, tenant)
    return True


def generations(session: Session) -> dict[str, int]:
    """Every tenant's generation (one small read; one row per tenant that ever published)."""
    return {t: g for t, g in session.connection().execute(_GENERATIONS)}


_GENERATIONS = select(TemplateGeneration.tenant, TemplateGeneration.generation)  # every batch


def published_sources(session: Session, tenant: str) -> list[TemplateVersion]:
    """The tenant's published versions (at most one per template)."""
    return list(session.scalars(select(TemplateVersion)
                                .where(TemplateVersion.tenant == tenant,
                                       TemplateVersion.state == VersionState.PUBLISHED)))
