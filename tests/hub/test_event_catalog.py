"""Event types and templates added by files only: accepted at intake, rendered and sent;
broken files are refused at startup with file and line; `hub templates check`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api import create_app
from hub.catalog_check import lint_catalog
from hub.config_files import ConfigFileError
from hub.event_catalog import parse_types_file
from hub.followups.rules import load_rules
from hub.keys import Scope, create_key
from hub.runtime import HubRuntime
from hub.settings import get_settings
from tests.helpers import api_key, event, free_port, make_runtime, read_outbox

TYPES = '''# a carrier's own types
[types."parcel.locker_opened"]
category = "transactional"
rank = 60
urgent = true
required = ["data.door"]

[types."parcel.vip_only"]
category = "transactional"
tenants = ["acme"]
'''

LOCKER_PL = '''{% block sms %}
Skrytka {{ data.door }} jest otwarta: odbierz {{ parcel.tracking_number }}.
{% endblock %}
{% block push_title %}Skrytka otwarta{% endblock %}
{% block push_body %}Drzwi {{ data.door }}: {{ parcel.tracking_number }}{% endblock %}
{% block subject %}Skrytka {{ data.door }} otwarta{% endblock %}
{% block heading %}Skrytka otwarta{% endblock %}
{% block body %}Paczka {{ parcel.tracking_number }} czeka za drzwiami {{ data.door }}.{% endblock %}
{% block inbox_title %}Skrytka otwarta{% endblock %}
{% block inbox_body %}Paczka {{ parcel.tracking_number }} czeka za drzwiami {{ data.door }}.{% endblock %}
'''


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """HUB_EVENT_TYPES_FILE and HUB_TEMPLATES_DIR pointing at files written by the test."""
    (tmp_path / "types.toml").write_text(TYPES, "utf-8")
    catalog = tmp_path / "catalog"
    for name in ("parcel.locker_opened", "parcel.vip_only"):
        (catalog / name).mkdir(parents=True)
        for locale in ("pl", "en", "uk", "de"):
            (catalog / name / f"{locale}.j2").write_text(LOCKER_PL.replace("{{ data.door }}",
                                                                           "{{ data.get('door', 1) }}")
                                                         if name.endswith("vip_only")
                                                         else LOCKER_PL, "utf-8")
    # an override of a packaged template, too
    (catalog / "parcel.delivered").mkdir()
    (catalog / "parcel.delivered" / "pl.j2").write_text(
        LOCKER_PL.replace("Skrytka {{ data.door }} jest otwarta: odbierz", "Doręczono:")
        .replace("{{ data.door }}", "A"), "utf-8")
    (catalog / "samples.json").write_text('{"parcel.locker_opened": {"data": {"door": 12}}}')
    monkeypatch.setenv("HUB_EVENT_TYPES_FILE", str(tmp_path / "types.toml"))
    monkeypatch.setenv("HUB_TEMPLATES_DIR", str(catalog))
    get_settings.cache_clear()
    yield catalog
    get_settings.cache_clear()


@pytest.fixture
def runtime(configured: Path, database_url: str, tmp_path: Path) -> Iterator[HubRuntime]:
    rt = make_runtime(database_url, tmp_path, templates_dir=str(configured))
    yield rt
    rt.db.dispose()


def test_a_custom_type_and_its_templates_are_accepted_rendered_and_sent(
    runtime: HubRuntime, tmp_path: Path
) -> None:
    from hub.worker import Worker

    with TestClient(create_app(runtime)) as client:
        client.headers["Authorization"] = f"Bearer {api_key(runtime)}"
        missing = client.post("/v1/events", json=event("e0", type_="parcel.locker_opened"))
        assert missing.status_code == 422 and "data.door" in missing.text
        ok = client.post("/v1/events", json=event("e1", type_="parcel.locker_opened",
                                                  data={"door": 12}))
        assert ok.status_code == 202, ok.text
        client.post("/v1/events", json=event("e2", type_="parcel.delivered"))
        Worker(runtime.db, runtime.pipeline, runtime.settings).drain()
        view = client.get("/v1/events/e1").json()
        assert view["category"] == "transactional" and view["state"] == "processed"
    bodies = [m["parts"]["body"] for m in read_outbox(tmp_path / "outbox.jsonl")]
    assert bodies == ["Skrytka 12 jest otwarta: odbierz PL0001234567.",
                      "Doręczono: PL0001234567."]


def test_a_tenant_type_is_refused_to_other_tenants(runtime: HubRuntime) -> None:
    acme = create_key(runtime.db, "acme-system", [Scope.ADMIN], tenant="acme")
    with TestClient(create_app(runtime)) as client:
        other = client.post("/v1/events", json=event("v1", type_="parcel.vip_only"),
                            headers={"Authorization": f"Bearer {api_key(runtime)}"})
        assert other.status_code == 422
        assert other.headers["content-type"] == "application/problem+json"
        mine = client.post("/v1/events", json=event("v1", type_="parcel.vip_only"),
                           headers={"Authorization": f"Bearer {acme}"})
        assert mine.status_code == 202


@pytest.mark.parametrize(("text", "line", "needle"), [
    ('[types."parcel.x"]\ncategory = "transactional"\nrank = \n', 3, "not valid TOML"),
    ('# c\n\n[types."parcel.x"]\ncategory = "legal"\n', 4, "category must be one of"),
    ('[types."parcel.ok"]\ncategory = "loyalty"\n\n[types."parcel.x"]\ncategory = '
     '"loyalty"\nrequired = ["door"]\n', 6, "required must be"),
    ('[types."Parcel X"]\ncategory = "loyalty"\n', 1, "dotted lower-case"),
    ('[types."parcel.x"]\ncategory = "loyalty"\ncolour = "red"\n', 3, "unknown key 'colour'"),
])
def test_type_file_errors_name_file_and_line(tmp_path: Path, text: str, line: int,
                                              needle: str) -> None:
    path = tmp_path / "types.toml"
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigFileError) as caught:
        parse_types_file(path)
    assert caught.value.line == line and needle in str(caught.value)
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_rules_file_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[rules.r]\non = "parcel.delivered"\nsend = "parcel.delivered"\n'
                    'at = "occurred_at"\noffsets = ["+2x"]\nscope = "parcel"\n', "utf-8")
    with pytest.raises(ConfigFileError, match=r"rules.toml:5: rule 'r': offset '\+2x'"):
        load_rules(path, {"parcel.delivered"})


def test_a_broken_types_file_stops_hub_serve_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "types.toml"
    bad.write_text('[types."parcel.x"]\ncategory = "transactional"\nrank = "high"\n', "utf-8")
    env = {**os.environ, "HUB_EVENT_TYPES_FILE": str(bad),
           "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}"}
    proc = subprocess.run([sys.executable, "-m", "hub", "serve", "--port", str(free_port())],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{bad}:3: event type 'parcel.x': rank must be an integer" in proc.stderr


def test_templates_check_finds_gaps_and_budget_overruns(configured: Path) -> None:
    settings = get_settings()
    assert lint_catalog(configured, settings).problems == []
    (configured / "parcel.locker_opened" / "uk.j2").unlink()
    (configured / "parcel.locker_opened" / "de.j2").write_text(
        LOCKER_PL.replace("jest otwarta", "ist offen " + "sehr lange " * 20), "utf-8")
    problems = lint_catalog(configured, settings).problems
    assert any("parcel.locker_opened sms uk formal: falls back" in p for p in problems)
    assert any("parcel.locker_opened sms de formal: SMS of 2 segments" in p for p in problems)
    (configured / "fallbacks.toml").write_text('"parcel.locker_opened" = ["uk"]\n', "utf-8")
    problems = lint_catalog(configured, settings).problems
    assert not any(" uk " in p for p in problems)
    cli = subprocess.run([sys.executable, "-m", "hub", "templates", "check", str(configured)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HUB_EVENT_TYPES_FILE": str(
                             configured.parent / "types.toml")})
    assert cli.returncode == 1 and "over its budget" in cli.stderr


def test_a_broken_template_is_refused_at_startup_naming_its_line(tmp_path: Path) -> None:
    from hub.catalog_check import compile_catalog

    folder = tmp_path / "catalog" / "parcel.delivered"
    folder.mkdir(parents=True)
    (folder / "pl.j2").write_text("{% block sms %}\nok\n{% if %}\n{% endblock %}\n", "utf-8")
    with pytest.raises(ConfigFileError) as caught:
        compile_catalog(tmp_path / "catalog")
    assert str(caught.value).startswith(f"{folder / 'pl.j2'}:3: template syntax")
