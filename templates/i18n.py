"""Gettext catalogs for strings shared across templates (labels, plurals, phrases).

`.po` sources live in templates/locale/<lang>/LC_MESSAGES/messages.po; `make i18n`
extracts them with pybabel (babel.cfg) and compiles the `.mo` files loaded here.
"""

from __future__ import annotations

import gettext as _gettext
from functools import lru_cache
from pathlib import Path

from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "messages"


@lru_cache(maxsize=16)
def translations(locale: str) -> _gettext.NullTranslations:
    """The compiled catalog for a locale (the identity catalog when none exists)."""
    found = Translations.load(str(LOCALE_DIR), [locale], DOMAIN)
    return found if isinstance(found, Translations) else NullTranslations()


def gettext(locale: str, message: str, **values: object) -> str:
    """Translated `message`, then filled with `%(name)s` keyword values."""
    text = translations(locale).gettext(message)
    return text % values if values else text


def ngettext(locale: str, singular: str, plural: str, n: int) -> str:
    """The plural form the catalog's Plural-Forms (CLDR rules via pybabel) picks for n."""
    return translations(locale).ngettext(singular, plural, n)
