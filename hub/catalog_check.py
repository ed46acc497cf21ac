"""Startup validation of the configured files and `hub templates check DIR`, the lint of a
template catalog: every event type × channel × locale × tone present (or an explicitly
accepted fallback), every template renders with sample data, SMS within budget."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError

from hub.config_files import ConfigFileError, read_toml
from hub.event_catalog import template_overlays
from hub.events import event_types
from hub.settings import Settings
from templates import CHANNELS, DIGEST, LOCALES, TONES, Coverage, Renderer, RenderRequest
from templates.errors import RenderError
from templates.samples import PROFILES, SAMPLE_NOW, sample_digest_items, sample_event


def check_startup(settings: Settings) -> None:
    """Reads every configured file once so a broken one stops the process at start with
    `file:line: problem` (ConfigFileError) instead of failing on the first event."""
    from hub.followups.rules import load_rules

    types = event_types(settings.event_types_file)
    load_rules(settings.followup_rules_file, set(types), tuple(settings.followups_disabled))
    for overlay in template_overlays(settings):
        compile_catalog(overlay)


def compile_catalog(directory: Path) -> None:
    """Every `.j2` of a catalog directory compiles and its budgets file parses."""
    if not directory.is_dir():
        raise ConfigFileError(directory, None, "templates directory does not exist")
    renderer = Renderer(overlays=(directory,))
    for path in sorted(directory.glob("*/*.j2")):
        try:
            renderer.env.get_template(f"catalog/{path.parent.name}/{path.name}")
        except TemplateSyntaxError as exc:
            raise ConfigFileError(path, exc.lineno, f"template syntax: {exc.message}") from exc
    budgets = directory / "budgets.toml"
    if budgets.exists():
        raw, _ = read_toml(budgets)
        for key, value in raw.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10:
                raise ConfigFileError(budgets, None, f"budget {key!r} must be 1 to 10 segments")


@dataclass
class LintReport:
    """What `hub templates check` found: problems fail the check, notes do not."""

    cells: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def lint_catalog(directory: Path | None, settings: Settings) -> LintReport:
    """Lints the packaged catalog with `directory` laid over it, for the configured types."""
    report = LintReport()
    overlays = (directory,) if directory else ()
    try:
        for overlay in overlays:
            compile_catalog(overlay)
    except ConfigFileError as exc:
        report.problems.append(str(exc))
        return report
    renderer = Renderer(overlays=overlays)
    accepted = _accepted_fallbacks(directory)
    samples = _samples(directory)
    for event_type in [*sorted(event_types(settings.event_types_file)), DIGEST]:
        for locale in LOCALES:
            for tone in TONES:
                for channel in CHANNELS:
                    report.cells += 1
                    _lint_cell(renderer, report, (event_type, channel, locale, tone),
                               accepted, samples)
    return report


def _lint_cell(renderer: Renderer, report: LintReport, cell: tuple[str, str, str, str],
               accepted: dict[str, list[str]], samples: dict[str, Any]) -> None:
    event_type, channel, locale, tone = cell
    where = f"{event_type} {channel} {locale} {tone}"
    coverage = renderer.coverage(event_type, channel, locale, tone)
    if coverage is Coverage.MISSING:
        report.problems.append(f"{where}: missing (no template in {locale}, pl or en)")
        return
    if coverage is Coverage.FALLBACK and locale not in accepted.get(event_type, []):
        report.problems.append(f"{where}: falls back to another locale or tone; add the "
                               f"template or accept it in fallbacks.toml")
    elif coverage is Coverage.FALLBACK:
        report.notes.append(f"{where}: accepted fallback")
    payload = sample_event(event_type, locale)
    extra = samples.get(event_type, {})
    for key in ("parcel", "data"):
        if isinstance(extra.get(key), dict):
            payload[key] = {**(payload.get(key) or {}), **extra[key]}
    ctx = renderer.context(payload, PROFILES[locale], now=SAMPLE_NOW,
                           items=sample_digest_items(locale))
    try:
        message = renderer.render(RenderRequest(event_type, channel, (locale, "pl", "en"),
                                                tone, ctx))
    except RenderError as exc:
        report.problems.append(f"{where}: does not render with sample data: {exc}")
        return
    if message.sms is not None and message.sms.over_budget:
        report.problems.append(f"{where}: SMS of {message.sms.segments} segments "
                               f"({message.sms.encoding}) over its budget of "
                               f"{message.sms.budget}")


def _accepted_fallbacks(directory: Path | None) -> dict[str, list[str]]:
    """`fallbacks.toml`: event type = locales allowed to use the fallback chain."""
    path = directory / "fallbacks.toml" if directory else None
    if path is None or not path.exists():
        return {}
    raw, _ = read_toml(path)
    return {str(k): [str(x) for x in v] for k, v in raw.items() if isinstance(v, list)}


def _samples(directory: Path | None) -> dict[str, Any]:
    """`samples.json`: per event type, `parcel` / `data` merged into the generic sample."""
    path = directory / "samples.json" if directory else None
    if path is None or not path.exists():
        return {}
    try:
        loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigFileError(path, exc.lineno, f"not valid JSON: {exc.msg}") from exc
    return loaded
