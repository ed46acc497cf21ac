"""Babel formatting in the customer's locale and time zone, bound once per render."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime, match_skeleton
from babel.lists import format_list
from babel.numbers import format_currency, format_decimal

from templates import i18n

# Babel locale used for formatting each message locale: English copy for a Polish carrier
# reads British dates (26 Nov, 24-hour clock), not American ones.
BABEL_LOCALES = {"pl": "pl_PL", "en": "en_GB", "uk": "uk_UA", "de": "de_DE"}


# Polish and Ukrainian messages write short dates as digits (26.11); "26 lis" reads clipped.
SHORT_DATE = {"pl": "dM", "uk": "dM"}


class MoneyLike(Protocol):
    amount: Decimal
    currency: str


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    """A cached ZoneInfo."""
    return ZoneInfo(name)


@lru_cache(maxsize=16)
def babel_locale(name: str) -> Locale:
    """A parsed Babel locale, cached (Babel parses locale strings on every call)."""
    return Locale.parse(name)


@lru_cache(maxsize=256)
def _pattern(name: str, skeleton: str) -> str:
    """The CLDR pattern that best matches a skeleton in a locale (resolved once)."""
    locale = babel_locale(name)
    best = match_skeleton(skeleton, locale.datetime_skeletons) or skeleton
    return str(locale.datetime_skeletons.get(best, best))


@lru_cache(maxsize=4096)
def _money(name: str, amount: Decimal, currency: str) -> str:
    text = format_currency(amount, currency, locale=babel_locale(name))
    # en_GB writes "PLN129.90"; an ISO code reads better apart from the digits.
    if text[:3].isalpha() and text[3:4].isdigit():
        text = f"{text[:3]}\u00a0{text[3:]}"
    return text


@lru_cache(maxsize=16)
def _relative_days(babel_locale: str) -> dict[int, str]:
    data = Locale.parse(babel_locale)._data["date_fields"]["day"]["relative"]
    return {int(k): str(v) for k, v in data.items() if int(k) in (0, 1, 2)}


@dataclass(frozen=True, slots=True)
class Formatter:
    """Formats values for one locale, time zone and reference moment (`now`)."""

    locale: str
    time_zone: str
    now: datetime

    @property
    def babel(self) -> str:
        return BABEL_LOCALES.get(self.locale, self.locale)

    def local(self, value: datetime | str) -> datetime:
        """The moment in the customer's time zone (ISO strings from `data` are parsed)."""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.astimezone(zone(self.time_zone))

    def time(self, value: datetime | str) -> str:
        """24-hour clock time: 19:40."""
        return self.date(value, "Hm")

    def date(self, value: datetime | str, skeleton: str | None = None) -> str:
        """A calendar date in the locale's short style: 26.11 (pl, uk), 26 Nov, 26. Nov."""
        skeleton = skeleton or SHORT_DATE.get(self.locale, "dMMM")
        return format_datetime(self.local(value), _pattern(self.babel, skeleton),
                               locale=babel_locale(self.babel))

    def day(self, value: datetime | str) -> str:
        """jutro / dzisiaj / pojutrze when close, else the short date."""
        delta = self.days_until(value)
        return _relative_days(self.babel).get(delta) or self.date(value)

    def moment(self, value: datetime | str) -> str:
        """Day and time: `jutro, 19:40`."""
        return f"{self.day(value)}, {self.time(value)}"

    def window(self, start: datetime | str, end: datetime | str) -> str:
        """An ETA window with its day: `jutro między 10:00 a 12:00`."""
        span = self.gettext(
            "between %(start)s and %(end)s", start=self.time(start), end=self.time(end)
        )
        return f"{self.day(start)} {span}"

    def days_until(self, value: datetime | str) -> int:
        """Whole calendar days from today to the moment's day, in the customer's zone."""
        return (self.local(value).date() - self.local(self.now).date()).days

    def price(self, money: MoneyLike) -> str:
        """An amount with its currency: `129,90 zł`."""
        return self.money(money.amount, money.currency)

    def money(self, amount: Decimal | str, currency: str) -> str:
        """12,50 zł; 1 234,50 €."""
        return _money(self.babel, Decimal(amount), currency)

    def number(self, value: float | Decimal) -> str:
        """1 234 in Polish, 1,234 in English."""
        return format_decimal(value, locale=babel_locale(self.babel))

    def list(self, items: Iterable[str]) -> str:
        """a, b i c."""
        return format_list([str(i) for i in items], locale=babel_locale(self.babel))

    def gettext(self, message: str, **values: object) -> str:
        """A shared string from the gettext catalog of this locale."""
        return i18n.gettext(self.locale, message, **values)

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        """The CLDR plural form: 1 paczka, 2 paczki, 5 paczek."""
        n = int(n)  # a missing value (StrictUndefined) fails here as an undefined variable
        text = i18n.ngettext(self.locale, singular, plural, n)
        return text % {"num": self.number(n), **values}
