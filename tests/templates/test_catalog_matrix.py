"""Every canonical event type renders for every channel, locale and tone with sample data."""

from __future__ import annotations

import re

import pytest

from hub.events import event_types
from templates import CHANNELS, DIGEST, LOCALES, TONES, Coverage, Renderer, RenderRequest
from templates.samples import BUSINESS_PROFILE, PROFILES, SAMPLE_NOW, sample_digest_items
from templates.samples import sample_event as sample

RENDERER = Renderer()
TYPES = [*sorted(event_types()), DIGEST]
CELLS = [(t, c, loc, tone) for t in TYPES for c in CHANNELS for loc in LOCALES for tone in TONES]


def _render(event_type: str, channel: str, locale: str, tone: str, profile: dict[str, str]):
    ctx = RENDERER.context(sample(event_type, locale), profile, now=SAMPLE_NOW,
                           items=sample_digest_items(locale))
    return RENDERER.render(RenderRequest(event_type, channel, (locale, "pl", "en"), tone, ctx))


@pytest.mark.parametrize(("event_type", "channel", "locale", "tone"), CELLS)
def test_every_cell_renders_in_its_own_locale(event_type, channel, locale, tone):
    message = _render(event_type, channel, locale, tone, PROFILES[locale])
    assert message.locale == locale and message.fallbacks == ()
    assert RENDERER.coverage(event_type, channel, locale, tone) is Coverage.PRESENT
    text = " ".join(message.parts.values())
    assert "None" not in text and "{{" not in text and "{%" not in text
    assert all(v.strip() for v in message.parts.values()), message.parts
    if event_type.startswith("parcel."):
        assert "PL0001234567" in text
    if channel == "sms":
        assert message.sms is not None and message.sms.segments >= 1
        assert not message.sms.over_budget, (message.parts["body"], message.sms)
    if channel == "email":
        assert set(message.parts) == {"subject", "html", "text"}
        assert f'<html lang="{locale}"' in message.parts["html"]
        assert "https://parcelhub.example/preferences" in message.parts["html"]
    if channel in ("push", "app_push", "inbox"):
        assert message.parts["url"].startswith("https://")
    if channel == "inbox":  # the inbox says more than the notification on the lock screen
        push = _render(event_type, "app_push", locale, tone, PROFILES[locale])
        assert len(message.parts["body"]) > len(push.parts["body"])


@pytest.mark.parametrize("event_type", TYPES)
@pytest.mark.parametrize("locale", ["pl", "uk", "de"])
def test_inbox_text_is_translated(event_type, locale):
    """No English left in another locale's inbox text (its last paragraph is the helpful one)."""
    own = _render(event_type, "inbox", locale, "formal", PROFILES[locale]).parts["body"]
    english = _render(event_type, "inbox", "en", "formal", PROFILES["en"]).parts["body"]
    assert own.split("\n\n")[-1] != english.split("\n\n")[-1]


@pytest.mark.parametrize("event_type", TYPES)
@pytest.mark.parametrize("locale", LOCALES)
def test_business_segment_renders(event_type, locale):
    for channel in CHANNELS:
        message = _render(event_type, channel, locale, "formal", BUSINESS_PROFILE)
        assert "None" not in " ".join(message.parts.values())


@pytest.mark.parametrize(("event_type", "locale", "needle"), [
    ("parcel.delivery_attempt_failed", "pl", "pod adres firmy"),
    ("parcel.delivery_attempt_failed", "en", "business address"),
    ("parcel.delivery_attempt_failed", "de", "Geschäftsadresse"),
    ("parcel.delivery_attempt_failed", "uk", "адресу компанії"),
])
def test_business_wording_differs_where_it_matters(event_type, locale, needle):
    business = _render(event_type, "sms", locale, "formal", BUSINESS_PROFILE)
    person = _render(event_type, "sms", locale, "formal", PROFILES[locale])
    assert needle in business.parts["body"] and needle not in person.parts["body"]


@pytest.mark.parametrize(("locale", "formal", "informal"), [
    ("pl", "Pana/Pani", "Cię"), ("de", "Sie", "dich"), ("uk", "Вас", "тебе"),
])
def test_tones_differ(locale, formal, informal):
    f = _render("parcel.delivery_attempt_failed", "email", locale, "formal", PROFILES[locale])
    i = _render("parcel.delivery_attempt_failed", "email", locale, "informal", PROFILES[locale])
    assert formal in f.parts["text"] and informal in i.parts["text"]
    assert informal not in f.parts["text"].split("\n--")[0]


def test_polish_pickup_sms_is_one_segment_with_code_deadline_and_cod():
    message = _render("parcel.ready_for_pickup", "sms", "pl", "informal", PROFILES["pl"])
    body = message.parts["body"]
    assert message.sms.segments == 1
    for needle in ("PL0001234567", "WAW123M", "482913", "jutro, 19:40", "129,90 zl"):
        assert needle in body


def test_failed_attempt_carries_the_reschedule_link_everywhere():
    for locale in LOCALES:
        for channel in CHANNELS:
            message = _render("parcel.delivery_attempt_failed", channel, locale, "formal",
                              PROFILES[locale])
            assert "/reschedule" in " ".join(message.parts.values()), (locale, channel)


def test_customs_amount_with_currency_in_every_locale():
    expected = {"pl": "48,20 zł", "en": "PLN 48.20", "uk": "48,20 PLN", "de": "48,20 PLN"}
    for locale, amount in expected.items():
        message = _render("parcel.customs_payment_required", "email", locale, "formal",
                          PROFILES[locale])
        assert amount in message.parts["subject"].replace("\u00a0", " ")


def test_email_html_is_escaped_and_accessible():
    ctx = RENDERER.context({**sample("marketing.campaign"),
                            "data": {"title": "<script>alert(1)</script>", "body": "a & b"}},
                           PROFILES["pl"], now=SAMPLE_NOW)
    html = RENDERER.render(RenderRequest("marketing.campaign", "email", ("pl",), "formal",
                                         ctx)).parts["html"]
    assert "<script>" not in html and "&lt;script&gt;" in html and "a &amp; b" in html
    assert 'role="presentation"' in html and "<h1>" in html and "@media (max-width" in html


def test_digest_combines_items():
    message = _render(DIGEST, "email", "pl", "informal", PROFILES["pl"])
    assert "3 nowe powiadomienia" in message.parts["subject"]
    assert message.parts["text"].count("\n+25 punktów.") == 1
    assert re.search(r"112 punktów wygaśnie 30 listopada", message.parts["text"])


def test_digest_accepts_throttling_held_items_and_survives_a_broken_one():
    held = [  # the shape the throttling stage keeps: event_type + summary (event_id, data)
        {"event_type": "loyalty.points_earned", "category": "loyalty",
         "occurred_at": "2026-11-25T09:00:00+01:00", "event_id": "e1", "data": {"points": 10}},
        {"event_type": "loyalty.tier_reached", "category": "loyalty",
         "occurred_at": "2026-11-25T10:00:00+01:00", "event_id": "e2", "data": {}},
    ]
    ctx = RENDERER.context({"type": DIGEST, "occurred_at": "2026-11-25T18:00:00+01:00"},
                           PROFILES["pl"], now=SAMPLE_NOW, items=held)
    message = RENDERER.render(RenderRequest(DIGEST, "push", ("pl",), "informal", ctx))
    assert message.parts["title"] == "2 nowe powiadomienia"
    assert message.parts["body"] == "+10 punktów i Nowa wiadomość na koncie"


def test_marketing_without_copy_falls_back_to_generic_lines():
    ctx = RENDERER.context({"type": "marketing.campaign",
                            "occurred_at": "2026-11-25T09:00:00+01:00", "data": {}},
                           PROFILES["de"], now=SAMPLE_NOW)
    message = RENDERER.render(RenderRequest("marketing.campaign", "push", ("de",), "formal", ctx))
    assert message.parts["title"] == "Unsere neuen Angebote"


def test_signed_links_from_the_link_factory_reach_the_footer():
    def links(customer_id: str, category: str, channel: str) -> dict[str, str]:
        return {"preferences": f"https://hub.example/p/{customer_id}",
                "unsubscribe": f"https://hub.example/u/{customer_id}-{category}-{channel}"}

    renderer = Renderer(links=links)
    profile = {**PROFILES["pl"], "customer_id": "c-1"}
    for event_type, unsubscribe in (("loyalty.points_earned", True),
                                    ("parcel.delivered", False)):
        ctx = renderer.context(sample(event_type), profile, now=SAMPLE_NOW, channel="email",
                               category=event_type.split(".")[0])
        parts = renderer.render(RenderRequest(event_type, "email", ("pl",), "formal",
                                              ctx)).parts
        assert "https://hub.example/p/c-1" in parts["html"]
        assert ("Wypisz się z tych wiadomości: https://hub.example/u/c-1-loyalty-email"
                in parts["text"]) is unsubscribe


URGENT_WORDING = {"pl": "Ostatnie godziny", "en": "Last hours", "uk": "Останні години",
                  "de": "Letzte Stunden"}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("tone", TONES)
@pytest.mark.parametrize("channel", CHANNELS)
def test_pickup_reminder_4h_variant_in_every_cell(locale, tone, channel):
    """The timer passes `hours_left`: 4 h before the deadline reads as the last hours."""
    payload = sample("parcel.pickup_reminder", locale)
    payload["data"]["hours_left"] = 4
    ctx = RENDERER.context(payload, PROFILES[locale], now=SAMPLE_NOW)
    message = RENDERER.render(RenderRequest("parcel.pickup_reminder", channel, (locale,), tone,
                                            ctx))
    text = " ".join(message.parts.values())
    assert message.fallbacks == () and "None" not in text
    if channel != "email":
        assert URGENT_WORDING[locale] in text
    assert not (message.sms and message.sms.over_budget), message.parts


@pytest.mark.parametrize(("hours", "polish"), [
    (24, "Zostały 24 godziny"), (4, "Zostały 4 godziny"), (1, "Została 1 godzina"),
    (5, "Zostało 5 godzin"), (22, "Zostały 22 godziny")])
def test_polish_hours_left_use_cldr_plural_forms(hours, polish):
    payload = sample("parcel.pickup_reminder")
    payload["data"]["hours_left"] = hours
    ctx = RENDERER.context(payload, PROFILES["pl"], now=SAMPLE_NOW)
    body = RENDERER.render(RenderRequest("parcel.pickup_reminder", "push", ("pl",), "informal",
                                         ctx)).parts["body"]
    assert body.startswith(polish)


def test_polish_reminder_sms_reads_well_and_fits_one_segment():
    message = _render("parcel.pickup_reminder", "sms", "pl", "formal", PROFILES["pl"])
    body = message.parts["body"]
    assert body == ("Przypominamy: przesylka PL0001234567 czeka: Paczkomat WAW123M. "
                    "Zostaly 24 godziny na odbior. Kod odbioru: 482913. "
                    "Termin: jutro, 19:40."), body
    assert message.sms.segments == 1 and message.sms.transliterated


@pytest.mark.parametrize(("days", "polish"), [
    (30, "Zostało 30 dni: 112 punktów wygaśnie"), (7, "Zostało 7 dni: 112 punktów wygaśnie"),
    (1, "Został 1 dzień: 112 punktów wygaśnie")])
def test_points_reminder_days_left_in_polish(days, polish):
    payload = sample("loyalty.points_expiry_reminder")
    payload["data"]["days_left"] = days
    ctx = RENDERER.context(payload, PROFILES["pl"], now=SAMPLE_NOW)
    def render(channel):
        return RENDERER.render(RenderRequest("loyalty.points_expiry_reminder", channel, ("pl",),
                                             "informal", ctx))
    assert render("push").parts["title"] == polish
    sms = render("sms")
    assert sms.sms.segments == 1 and "30 listopada" in sms.parts["body"]
