"""GSM-7 vs UCS-2, segment counts, the transliteration policy and budgets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from templates.sms import (
    Encoding,
    Transliteration,
    apply_policy,
    count_segments,
    fold_to_gsm7,
    is_gsm7,
)


def test_ascii_160_is_one_segment_161_is_two():
    assert count_segments("a" * 160) == count_segments("a" * 160)
    one = count_segments("a" * 160)
    assert (one.encoding, one.units, one.segments) == (Encoding.GSM7, 160, 1)
    two = count_segments("a" * 161)
    assert (two.units, two.segments, two.per_segment) == (161, 2, 153)
    assert count_segments("a" * 306).segments == 2
    assert count_segments("a" * 307).segments == 3


def test_one_polish_letter_forces_ucs2_with_70_67_sizes():
    assert count_segments("ą").encoding is Encoding.UCS2
    assert count_segments("ą" + "a" * 69).segments == 1
    over = count_segments("ą" + "a" * 70)
    assert (over.encoding, over.units, over.segments, over.per_segment) == (
        Encoding.UCS2, 71, 2, 67)
    assert count_segments("ą" * 134).segments == 2
    assert count_segments("ą" * 135).segments == 3


def test_euro_and_other_extension_characters_cost_two_septets():
    assert count_segments("€").units == 2
    assert count_segments("€").encoding is Encoding.GSM7
    assert count_segments("[]{}").units == 8
    assert count_segments("€" * 80).segments == 1   # 160 septets
    assert count_segments("a" + "€" * 80).segments == 2


def test_escape_pair_is_never_split_across_segments():
    # 152 plain septets then a euro: 154 septets do not fit one part of 153, and the escape
    # and the euro must travel together, so the second part starts with both.
    text = "a" * 152 + "€" + "b" * 10
    assert count_segments(text).segments == 2
    assert count_segments("a" * 152 + "€" * 77).segments == 3


def test_emoji_costs_two_utf16_units():
    count = count_segments("📦")
    assert (count.encoding, count.units) == (Encoding.UCS2, 2)
    assert count_segments("📦" * 35).segments == 1
    assert count_segments("📦" * 36).segments == 2


def test_german_umlauts_and_sharp_s_are_gsm7():
    assert is_gsm7("Grüße aus München, Straße Ä Ö Ü")


def test_folding_polish_into_gsm7():
    text = "Paczka czeka w Paczkomacie, odbiór do środy"
    assert count_segments(text).encoding is Encoding.UCS2
    folded = fold_to_gsm7(text)
    assert folded == "Paczka czeka w Paczkomacie, odbior do srody"
    assert count_segments(folded).encoding is Encoding.GSM7
    assert fold_to_gsm7("ZAŻÓŁĆ GĘŚLĄ JAŹŃ „cytat” – koniec…") == (
        'ZAZOLC GESLA JAZN "cytat" - koniec...')


def test_policy_over_budget_folds_only_when_needed():
    short = "Odbiór do środy"
    assert apply_policy(short, Transliteration.OVER_BUDGET, 1).body == short
    long = "Paczka czeka w Paczkomacie, odbiór do środy. " * 2
    result = apply_policy(long, Transliteration.OVER_BUDGET, 1)
    assert result.transliterated and result.count.encoding is Encoding.GSM7
    assert result.count.segments == 1 and not result.over_budget


def test_policy_off_and_always():
    text = "Odbiór do środy"
    off = apply_policy(text, Transliteration.OFF, 1)
    assert off.body == text and not off.transliterated
    always = apply_policy(text, Transliteration.ALWAYS, 1)
    assert always.body == "Odbior do srody" and always.transliterated


def test_cyrillic_is_not_folded_and_reports_over_budget():
    text = "Ваша посилка чекає на отримання в пункті видачі до завтра, код 482913, дякуємо!"
    result = apply_policy(text, Transliteration.ALWAYS, 1)
    assert result.body == text and not result.transliterated
    assert result.count.encoding is Encoding.UCS2 and result.over_budget


@given(st.text(max_size=400))
def test_segments_cover_units(text):
    count = count_segments(text)
    if not text:
        assert count.segments == 0
        return
    limit = 160 if count.encoding is Encoding.GSM7 else 70
    if count.units <= limit:
        assert count.segments == 1
    else:
        assert count.segments * count.per_segment >= count.units
        assert (count.segments - 1) * count.per_segment < count.units + count.segments


@given(st.text(alphabet="aąbcćdeęfghijklłmnńoóprsśtuwyzźżAĄĆĘŁŃÓŚŹŻ .,", max_size=200))
def test_folding_polish_always_reaches_gsm7(text):
    assert is_gsm7(fold_to_gsm7(text))
