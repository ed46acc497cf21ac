"""Template sources that try to escape the sandbox fail clearly and render nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from templates import Renderer, RenderError, RenderRequest, SandboxViolation, UndefinedVariable
from templates.samples import PROFILES, SAMPLE_NOW, sample_event

ATTACKS = {
    "dunder_class": ("{{ parcel.__class__ }}", SandboxViolation),
    "mro_subclasses": ("{{ ''.__class__.__mro__[1].__subclasses__() }}", SandboxViolation),
    "function_globals": ("{{ fmt.gettext.__globals__ }}", SandboxViolation),
    "init_globals_os": ("{{ customer.__init__.__globals__['os'] }}", SandboxViolation),
    "format_string_escape": ("{{ '{0.__class__}'.format(parcel) }}", SandboxViolation),
    "mutate_context": ("{{ data.update({'x': 1}) }}", SandboxViolation),
    "dataclass_internals": ("{{ parcel.__dataclass_fields__ }}", SandboxViolation),
    "os_module": ("{{ os.system('id') }}", UndefinedVariable),
    "config": ("{{ config.SECRET_KEY }}", UndefinedVariable),
    "settings": ("{{ settings }}", UndefinedVariable),
    "builtins_range": ("{{ range(10) | list }}", UndefinedVariable),
    "cycler_globals": ("{{ cycler.__init__.__globals__ }}", SandboxViolation),
    "include_passwd": ("{% include '/etc/passwd' %}", RenderError),
    "include_traversal": ("{% include 'layout/../../../../etc/passwd' %}", RenderError),
    "missing_variable": ("Kod: {{ parcel.pickup_point.locker_pin }}", UndefinedVariable),
    "printed_none": ("{{ parcel.cod }}", UndefinedVariable),
}


def _renderer(tmp_path: Path, source: str) -> Renderer:
    folder = tmp_path / "catalog" / "parcel.ready_for_pickup"
    folder.mkdir(parents=True)
    (folder / "pl.j2").write_text("{% block sms %}" + source + "{% endblock %}", "utf-8")
    return Renderer(catalog=tmp_path / "catalog")


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_escape_attempts_fail_clearly(tmp_path, name):
    source, error = ATTACKS[name]
    renderer = _renderer(tmp_path, source)
    event = sample_event("parcel.pickup_reminder")  # has a pickup point, no COD
    event["type"] = "parcel.ready_for_pickup"
    ctx = renderer.context(event, PROFILES["pl"], now=SAMPLE_NOW)
    with pytest.raises(error) as caught:
        renderer.render(RenderRequest("parcel.ready_for_pickup", "sms", ("pl",), "formal", ctx))
    message = str(caught.value)
    assert "catalog/parcel.ready_for_pickup/pl.j2" in message
    assert "root:" not in message  # nothing of /etc/passwd leaked into the error


def test_sandbox_violation_names_the_attribute(tmp_path):
    renderer = _renderer(tmp_path, "{{ parcel.__class__ }}")
    ctx = renderer.context(sample_event("parcel.ready_for_pickup"), PROFILES["pl"],
                           now=SAMPLE_NOW)
    with pytest.raises(SandboxViolation, match="__class__"):
        renderer.render(RenderRequest("parcel.ready_for_pickup", "sms", ("pl",), "formal", ctx))


def test_syntax_error_is_a_render_error(tmp_path):
    renderer = _renderer(tmp_path, "{% if %}")
    ctx = renderer.context(sample_event("parcel.ready_for_pickup"), PROFILES["pl"],
                           now=SAMPLE_NOW)
    with pytest.raises(RenderError, match="cannot be compiled"):
        renderer.render(RenderRequest("parcel.ready_for_pickup", "sms", ("pl",), "formal", ctx))
