"""The gettext catalogs are complete, compiled, and follow CLDR plural rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel import Locale
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from templates.catalog import LOCALES
from templates.i18n import LOCALE_DIR

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}


def _extracted() -> set[str]:
    found = set()
    for _, _, message, _, _ in extract_from_dir(
        str(ROOT), method_map=[("templates/catalog/**.j2", "jinja2"),
                               ("templates/layout/**.j2", "jinja2"),
                               ("templates/**.py", "python")],
        keywords=KEYWORDS,
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def _po(locale: str):
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=locale)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_extracted_string_is_translated(locale):
    catalog = _po(locale)
    ids = {m.id[0] if isinstance(m.id, tuple) else m.id for m in catalog if m.id}
    missing = _extracted() - ids
    assert not missing, f"run `make i18n` and translate: {sorted(missing)}"
    for message in catalog:
        if message.id:
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            assert all(strings) and "fuzzy" not in message.flags, message.id


@pytest.mark.parametrize("locale", LOCALES)
def test_mo_is_compiled_from_the_current_po(locale):
    po = _po(locale)
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.mo").open("rb") as fh:
        mo = read_mo(fh)
    for message in po:
        if message.id:
            assert mo.get(message.id) is not None, f"stale .mo: run `make i18n` ({message.id})"
            got = mo.get(message.id).string
            want = message.string
            assert (tuple(got) if isinstance(got, list) else got) == want


@pytest.mark.parametrize("locale", LOCALES)
def test_plural_forms_header_matches_cldr(locale):
    po = _po(locale)
    # gettext counts integer forms only; CLDR's extra "many"/"other" split for fractions
    # collapses into them (pybabel derives the header from CLDR when the .po is created).
    assert Locale.parse(locale).plural_form(5) in ("many", "other")
    assert po.num_plurals == {"pl": 3, "uk": 3, "en": 2, "de": 2}[locale]
