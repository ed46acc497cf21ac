"""Golden plural forms and Babel formatting in the customer's locale and time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from templates.formatting import Formatter

NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
COUNTS = (0, 1, 2, 5, 12, 22, 25, 112)


def fmt(locale: str, tz: str = "Europe/Warsaw", now: datetime = NOW) -> Formatter:
    return Formatter(locale, tz, now)


@pytest.mark.parametrize(("locale", "expected"), [
    ("pl", ["0 paczek", "1 paczka", "2 paczki", "5 paczek", "12 paczek", "22 paczki",
            "25 paczek", "112 paczek"]),
    ("uk", ["0 посилок", "1 посилка", "2 посилки", "5 посилок", "12 посилок", "22 посилки",
            "25 посилок", "112 посилок"]),
    ("de", ["0 Pakete", "1 Paket", "2 Pakete", "5 Pakete", "12 Pakete", "22 Pakete",
            "25 Pakete", "112 Pakete"]),
    ("en", ["0 parcels", "1 parcel", "2 parcels", "5 parcels", "12 parcels", "22 parcels",
            "25 parcels", "112 parcels"]),
])
def test_parcel_plurals(locale, expected):
    f = fmt(locale)
    assert [f.ngettext("%(num)s parcel", "%(num)s parcels", n) for n in COUNTS] == expected


@pytest.mark.parametrize(("locale", "expected"), [
    ("pl", ["0 punktów", "1 punkt", "2 punkty", "5 punktów", "12 punktów", "22 punkty",
            "25 punktów", "112 punktów"]),
    ("uk", ["0 балів", "1 бал", "2 бали", "5 балів", "12 балів", "22 бали", "25 балів",
            "112 балів"]),
])
def test_point_plurals(locale, expected):
    f = fmt(locale)
    assert [f.ngettext("%(num)s point", "%(num)s points", n) for n in COUNTS] == expected


def test_plural_sentence_agrees_with_its_verb_in_polish():
    f = fmt("pl")
    got = [f.ngettext("%(num)s day left", "%(num)s days left", n) for n in (1, 2, 5, 22, 112)]
    assert got == ["Został 1 dzień", "Zostały 2 dni", "Zostało 5 dni", "Zostały 22 dni",
                   "Zostało 112 dni"]
    got = [f.ngettext("%(num)s point expires", "%(num)s points expire", n) for n in (1, 3, 12)]
    assert got == ["1 punkt wygaśnie", "3 punkty wygasną", "12 punktów wygaśnie"]


def test_large_counts_use_locale_grouping():
    assert fmt("pl").ngettext("%(num)s point", "%(num)s points", 1240) == "1\u00a0240 punktów"
    assert fmt("en").ngettext("%(num)s point", "%(num)s points", 1240) == "1,240 points"


@pytest.mark.parametrize(("locale", "expected"), [
    ("pl", "jutro między 10:00 a 12:00"),
    ("en", "tomorrow between 10:00 and 12:00"),
    ("uk", "завтра з 10:00 до 12:00"),
    ("de", "morgen zwischen 10:00 und 12:00 Uhr"),
])
def test_eta_window(locale, expected):
    start = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # 10:00 in Warsaw (CET, UTC+1)
    end = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
    assert fmt(locale).window(start, end) == expected


def test_relative_days_and_dates():
    f = fmt("pl")
    assert f.day("2026-11-25T20:00:00+01:00") == "dzisiaj"
    assert f.day("2026-11-26T08:00:00+01:00") == "jutro"
    assert f.day("2026-11-27T08:00:00+01:00") == "pojutrze"
    assert f.day("2026-11-30T08:00:00+01:00") == "30.11"
    assert f.date("2026-11-30T08:00:00+01:00", "dMMMM") == "30 listopada"
    assert fmt("uk").date("2026-11-30T08:00:00+01:00", "dMMMM") == "30 листопада"
    assert fmt("en").day("2026-11-30T08:00:00+01:00") == "30 Nov"


def test_relative_day_is_decided_in_the_customers_zone():
    # 23:30 UTC on 25 Nov is already 26 Nov in Warsaw ("tomorrow" there) but not in London.
    moment = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    assert fmt("en", "Europe/Warsaw").day(moment) == "tomorrow"
    assert fmt("en", "Europe/London").day(moment) == "today"


@pytest.mark.parametrize(("utc", "local"), [
    # Summer time ends 25 Oct 2026 at 03:00 CEST -> 02:00 CET.
    (datetime(2026, 10, 24, 8, 0, tzinfo=UTC), "10:00"),  # CEST, UTC+2
    (datetime(2026, 10, 26, 8, 0, tzinfo=UTC), "09:00"),  # CET, UTC+1
    # Summer time starts 29 Mar 2026 at 02:00 CET -> 03:00 CEST.
    (datetime(2026, 3, 28, 8, 0, tzinfo=UTC), "09:00"),
    (datetime(2026, 3, 29, 8, 0, tzinfo=UTC), "10:00"),
    (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "01:59"),
    (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "03:00"),
])
def test_warsaw_times_across_dst(utc, local):
    assert fmt("pl").time(utc) == local


def test_window_across_the_autumn_change():
    start = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    end = datetime(2026, 10, 25, 2, 30, tzinfo=UTC)    # 03:30 CET
    f = fmt("pl", now=datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    assert f.window(start, end) == "jutro między 02:30 a 03:30"
    assert f.days_until(end) == 1


@pytest.mark.parametrize(("locale", "amount", "currency", "expected"), [
    ("pl", "12.50", "PLN", "12,50\u00a0zł"),
    ("pl", "1234.5", "EUR", "1\u00a0234,50\u00a0€"),
    ("en", "12.50", "PLN", "PLN\u00a012.50"),
    ("en", "12.50", "EUR", "€12.50"),
    ("de", "1234.5", "EUR", "1.234,50\u00a0€"),
    ("uk", "99.99", "UAH", "99,99\u00a0₴"),
])
def test_money(locale, amount, currency, expected):
    assert fmt(locale).money(Decimal(amount), currency) == expected


def test_numbers_and_lists():
    assert fmt("pl").number(1234567.5) == "1\u00a0234\u00a0567,5"
    assert fmt("de").number(1234567.5) == "1.234.567,5"
    assert fmt("pl").list(["SMS", "e-mail", "push"]) == "SMS, e-mail i push"
    assert fmt("uk").list(["SMS", "e-mail"]) == "SMS і e-mail"
    assert fmt("en").list(["a", "b", "c"]) == "a, b and c"
