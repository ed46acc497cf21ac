"""What the API and the page do with a template draft: check it, preview it, save it,
publish it (with confirmation when its preview warns), roll back, return to the catalog.

Saving refuses what can never work (syntax, the sandbox's rules, unknown blocks, size);
publishing refuses a draft that drops a channel its locale's catalog file serves, and asks
for confirmation when any sample render warns (SMS cost, undefined variables, HTML size).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import template_versions as store
from hub.db import Database
from hub.models import TemplateVersion
from hub.published_templates import draft_label
from hub.template_versions import TemplateRef, VersionConflict
from templates import DraftTemplate, Renderer, RenderError
from templates.drafts import SourceProblem, check_source, covered_channels
from templates.preview import (
    Preview,
    PreviewWarning,
    Warning,
    channels_dropped,
    draft_previews,
)

__all__ = ["ConcurrentChange", "DraftRejected", "NeedsConfirmation", "PublishRefused",
           "VersionConflict", "compile_checked", "preview_source", "publish", "rollback",
           "save", "unpublish"]


class DraftRejected(Exception):
    """The source cannot be saved; `problems` says why (and where)."""

    def __init__(self, problems: list[SourceProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class PublishRefused(Exception):
    """The draft would break messages if published (hard errors, no confirmation helps)."""


class NeedsConfirmation(Exception):
    """The draft's previews warn; publishing needs `confirm`."""

    def __init__(self, warnings: list[tuple[str, str, Warning]]) -> None:
        super().__init__(f"{len(warnings)} preview warnings")
        self.warnings = warnings


class ConcurrentChange(Exception):
    """Someone else saved or published the same template at the same moment; retry."""


@dataclass(frozen=True, slots=True)
class CheckedDraft:
    draft: DraftTemplate
    previews: dict[tuple[str, str], Preview]


def compile_checked(renderer: Renderer, ref: TemplateRef, source: str,
                    label: str = "draft") -> CheckedDraft:
    """The draft compiled and rendered with sample data for each channel × tone; raises
    DraftRejected when the source breaks a rule or the sandbox stops a sample render."""
    problems = check_source(renderer.env, source)
    if problems:
        raise DraftRejected(problems)
    try:
        draft = renderer.compile_draft(ref.event_type, ref.locale, label, source)
    except RenderError as exc:
        raise DraftRejected([SourceProblem("syntax", str(exc))]) from None
    previews = draft_previews(renderer, draft)
    blocked = [SourceProblem("sandbox", w.message) for p in previews.values()
               for w in p.warnings if w.code is PreviewWarning.SANDBOX_VIOLATION]
    if blocked:
        raise DraftRejected(blocked[:1])
    return CheckedDraft(draft, previews)


def preview_source(renderer: Renderer, ref: TemplateRef, source: str) -> CheckedDraft:
    """Previews an unsaved source (the page's live preview); same checks as saving."""
    return compile_checked(renderer, ref, source)


def _committed(db: Database, work: Callable[[Session], TemplateVersion]) -> TemplateVersion:
    """Runs `work` in one transaction; a unique-constraint race becomes ConcurrentChange."""
    try:
        with db.transaction() as session:
            row = work(session)
            session.flush()
            return row
    except IntegrityError as exc:
        raise ConcurrentChange("the template changed at the same moment; try again") from exc


def save(db: Database, renderer: Renderer, tenant: str, ref: TemplateRef, source: str,
         author: str, note: str | None = None) -> TemplateVersion:
    """Checks and stores the source as the template's next draft version."""
    compile_checked(renderer, ref, source)
    return _committed(db, lambda s: store.save_draft(s, tenant, ref.template_id, source,
                                                     author, note))


def _warnings(checked: CheckedDraft) -> list[tuple[str, str, Warning]]:
    return [(channel, tone, w) for (channel, tone), p in checked.previews.items()
            for w in p.warnings if w.code is not PreviewWarning.FALLBACK_USED]


def publish(db: Database, renderer: Renderer, tenant: str, ref: TemplateRef, number: int,
            by: str, confirm: bool = False) -> TemplateVersion:
    """Publishes a draft version; raises LookupError, VersionConflict, PublishRefused,
    NeedsConfirmation or ConcurrentChange."""
    with db.sessions() as session:
        row = store.get_version(session, tenant, ref.template_id, number)
        if row is None:
            raise LookupError(f"no version {number} of {ref.template_id}")
        source = row.source
    checked = compile_checked(renderer, ref, source, draft_label(ref.template_id, number))
    if not covered_channels(set(checked.draft.template.blocks)):
        raise PublishRefused("the draft covers no channel completely (sms needs block sms; "
                             "email: subject, heading, body; push: push_title, push_body)")
    dropped = channels_dropped(renderer, checked.draft)
    if dropped:
        raise PublishRefused(f"the catalog file for {ref.locale} serves {', '.join(dropped)} "
                             "but the draft lacks its blocks; publishing would drop them")
    warnings = _warnings(checked)
    if warnings and not confirm:
        raise NeedsConfirmation(warnings)

    def work(session: Session) -> TemplateVersion:
        again = store.get_version(session, tenant, ref.template_id, number)
        assert again is not None
        return store.publish(session, again, by)

    return _committed(db, work)


def rollback(db: Database, tenant: str, ref: TemplateRef, number: int,
             by: str) -> TemplateVersion:
    """Publishes an earlier (archived) version again as a new version."""
    def work(session: Session) -> TemplateVersion:
        row = store.get_version(session, tenant, ref.template_id, number)
        if row is None:
            raise LookupError(f"no version {number} of {ref.template_id}")
        return store.rollback(session, row, by)

    return _committed(db, work)


def unpublish(db: Database, tenant: str, ref: TemplateRef, by: str) -> bool:
    """Returns the template to the catalog file; False when nothing was published."""
    try:
        with db.transaction() as session:
            return store.unpublish(session, tenant, ref.template_id, by)
    except IntegrityError as exc:
        raise ConcurrentChange("the template changed at the same moment; try again") from exc
