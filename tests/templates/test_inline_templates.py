"""Inline template sets (a campaign variant's copy): rendered by the same sandboxed renderer
and layouts as catalog files, escaped in HTML, structure-proof, and an unknown set leaves
the request to the catalog."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from templates import Renderer, RenderRequest
from templates.errors import SandboxViolation
from templates.inline import FixedSource, check_part, compose
from templates.samples import sample_event

PARTS = {"email": {"subject": "Oferta dla {{ customer.first_name }}", "heading": "Dzień dobry",
                   "body": "<script>alert(1)</script> -20%", "button": "Sprawdź"},
         "sms": {"text": "{{ brand.name }}: -20% do niedzieli"},
         "push": {"title": "-20%", "body": "Do niedzieli"}}
RENDERER = Renderer(inline=FixedSource({
    "set-1": {"pl": compose(PARTS, "https://example.pl/o")},
    "evil": {"pl": compose({"sms": {"text": "{{ ''.__class__.__mro__ }}"}})}}))


def _render(channel: str, template_set: str | None) -> object:
    payload = sample_event("marketing.campaign", "pl")
    ctx = RENDERER.context(payload, {"name": "Anna Kowalska"},
                           now=datetime(2026, 11, 25, 12, tzinfo=UTC))
    return RENDERER.render(RenderRequest("marketing.campaign", channel, ("pl",), "formal", ctx,
                                         template_set))


def test_a_set_renders_every_channel_through_the_layouts() -> None:
    email = _render("email", "set-1")
    assert email.parts["subject"] == "Oferta dla Anna"  # type: ignore[attr-defined]
    html = email.parts["html"]  # type: ignore[attr-defined]
    assert "&lt;script&gt;" in html and "<script>" not in html  # escaped by the layout
    assert 'href="https://example.pl/o"' in html and "Sprawdź" in html
    sms = _render("sms", "set-1")
    assert sms.parts["body"] == "Parcel Hub: -20% do niedzieli"  # type: ignore[attr-defined]
    push = _render("push", "set-1")
    assert push.parts == {"title": "-20%", "body": "Do niedzieli",  # type: ignore[attr-defined]
                          "url": "https://example.pl/o"}


def test_the_sandbox_holds_and_unknown_sets_use_the_catalog() -> None:
    with pytest.raises(SandboxViolation):
        _render("sms", "evil")
    catalog = _render("sms", "nobody-stored-this")
    assert catalog.template == "catalog/marketing.campaign/pl.j2"  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", ["{% endblock %}", "{%- block x %}", "{% extends 'a' %}"])
def test_parts_cannot_reshape_the_set(text: str) -> None:
    with pytest.raises(ValueError):
        check_part(text)


def test_the_push_copy_is_the_apps_too() -> None:
    """A campaign on app_push and inbox sends the push copy: the app notification reuses the
    push blocks, the inbox entry gets the same title and text; without push copy the
    campaign is refused, naming the channel."""
    import pytest
    from pydantic import ValidationError

    from hub.campaigns.model import CampaignIn
    from templates.inline import compose

    source = compose({"push": {"title": "Paczka taniej", "body": "Do niedzieli -20%"}})
    for block in ("push_title", "push_body", "inbox_title", "inbox_body"):
        assert f"{{% block {block} %}}" in source
    base = {"name": "app", "audience_id": "aud_x", "category": "marketing",
            "channels": ["app_push", "inbox"]}
    CampaignIn.model_validate({**base, "variants": [{"name": "a", "templates": {
        "pl": {"push": {"title": "Paczka taniej", "body": "Do niedzieli -20%"}}}}]})
    with pytest.raises(ValidationError, match="no push copy \\(app_push shows it\\)"):
        CampaignIn.model_validate({**base, "variants": [{"name": "a", "templates": {
            "pl": {"sms": {"text": "Paczka taniej"}}}}]})
