"""Locale and tone fall back along the chain; the decision log records the fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from hub.events import EventIn
from hub.intake import accept
from hub.models import Decision
from hub.pipeline import Pipeline, Stages
from hub.worker import Worker
from templates import Coverage, Renderer, RenderRequest, TemplateMissing
from templates.samples import PROFILES, SAMPLE_NOW, sample_event
from tests.helpers import event as wire_event
from tests.helpers import make_runtime

SMS = ("{% block sms %}Paczka {{ parcel.tracking_number }} ({{ locale }}, {{ formal }})"
       "{% endblock %}")


def _catalog(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "catalog"
    for name, source in files.items():
        path = root / "parcel.ready_for_pickup" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, "utf-8")
    return root


def _render(renderer: Renderer, locales: tuple[str, ...], tone: str):
    ctx = renderer.context(sample_event("parcel.ready_for_pickup"), PROFILES["uk"],
                           now=SAMPLE_NOW)
    return renderer.render(RenderRequest("parcel.ready_for_pickup", "sms", locales, tone, ctx))


def test_exact_tone_file_wins_over_toneless(tmp_path):
    renderer = Renderer(_catalog(tmp_path, {"pl.informal.j2": SMS, "pl.j2": SMS}))
    message = _render(renderer, ("pl", "en"), "informal")
    assert message.template.endswith("pl.informal.j2") and message.fallbacks == ()


def test_locale_and_tone_fallback_is_reported(tmp_path):
    renderer = Renderer(_catalog(tmp_path, {"pl.formal.j2": SMS}))
    message = _render(renderer, ("uk", "pl", "en"), "informal")
    assert (message.locale, message.tone) == ("pl", "formal")
    assert message.fallbacks == ("locale uk→pl", "tone informal→formal")
    assert message.parts["body"].endswith("(pl, True)")
    assert renderer.coverage("parcel.ready_for_pickup", "sms", "uk", "informal") is (
        Coverage.FALLBACK)
    assert renderer.coverage("parcel.ready_for_pickup", "sms", "pl", "formal") is (
        Coverage.PRESENT)
    assert renderer.coverage("parcel.ready_for_pickup", "email", "pl", "formal") is (
        Coverage.MISSING)


def test_missing_everywhere_raises(tmp_path):
    renderer = Renderer(_catalog(tmp_path, {"de.j2": SMS}))
    with pytest.raises(TemplateMissing, match="no sms template"):
        _render(renderer, ("pl", "en"), "formal")


def test_pipeline_records_the_fallback_in_the_decision(tmp_path):
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    try:
        renderer = Renderer(_catalog(tmp_path, {"pl.formal.j2": SMS}))
        stages = runtime.pipeline.stages
        pipeline = Pipeline(runtime.db, Stages(stages.limiter, renderer, stages.transports))
        body = wire_event("evt-fb")
        body["customer"] = {**body["customer"], "locale": "uk", "tone": "informal"}
        accept(runtime.db, "test", [EventIn.model_validate(body)])
        Worker(runtime.db, pipeline, runtime.settings).drain(timeout=10)
        with runtime.db.sessions() as session:
            decisions = session.scalars(select(Decision)).all()
        sms = next(d for d in decisions if d.channel == "sms")
        assert sms.outcome == "sent"
        assert "template fallback: locale uk→pl, tone informal→formal" in sms.detail
        email = next(d for d in decisions if d.channel == "email")
        assert email.outcome == "skipped"  # sms settled the event; email was a fallback route
    finally:
        runtime.stop()


def test_pipeline_records_a_render_error_as_a_failed_decision(tmp_path):
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    try:
        broken = "{% block sms %}{{ parcel.pickup_point.locker_pin }}{% endblock %}"
        renderer = Renderer(_catalog(tmp_path, {"pl.j2": broken}))
        stages = runtime.pipeline.stages
        pipeline = Pipeline(runtime.db, Stages(stages.limiter, renderer, stages.transports))
        accept(runtime.db, "test", [EventIn.model_validate(wire_event("evt-broken"))])
        Worker(runtime.db, pipeline, runtime.settings).drain(timeout=10)
        with runtime.db.sessions() as session:
            decisions = {d.channel: d for d in session.scalars(select(Decision)).all()}
        assert decisions["sms"].outcome == "failed"
        assert decisions["sms"].reason == "render_error"
        assert "locker_pin" in decisions["sms"].detail
        assert decisions["email"].reason == "template_missing"  # next route, no email file
    finally:
        runtime.stop()
