"""Validation of contact details and profile fields."""

from __future__ import annotations

import pytest

from preferences import AddressError, AddressProblem, check_locale, check_time_zone, normalize_phone


@pytest.mark.parametrize(("raw", "e164"), [
    ("+48512345678", "+48512345678"),
    ("512 345 678", "+48512345678"),
    ("+49 151 23456789", "+4915123456789"),
    ("+380 67 123 4567", "+380671234567"),
])
def test_mobile_numbers_are_stored_as_e164(raw: str, e164: str) -> None:
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize(("raw", "problem"), [
    ("hello", AddressProblem.PHONE_UNPARSABLE),
    ("+48 123", AddressProblem.PHONE_INVALID),
    ("+48 22 123 45 67", AddressProblem.PHONE_NOT_MOBILE),  # Warsaw landline
])
def test_unusable_numbers_say_why(raw: str, problem: AddressProblem) -> None:
    with pytest.raises(AddressError) as err:
        normalize_phone(raw)
    assert err.value.problem is problem


def test_locale_and_zone_checks() -> None:
    assert check_locale("uk") == "uk"
    with pytest.raises(AddressError, match="supported: pl, en, uk, de"):
        check_locale("fr")
    assert check_time_zone("Europe/Kyiv") == "Europe/Kyiv"
    with pytest.raises(AddressError):
        check_time_zone("Mars/Olympus")
    with pytest.raises(AddressError):
        check_time_zone("../etc/passwd")
