"""Validation of contact details and profile fields (pure; raises AddressError with a reason)."""

from __future__ import annotations

import enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import PhoneNumberType

from preferences.model import SUPPORTED_LOCALES

_SMS_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


class AddressProblem(enum.StrEnum):
    PHONE_UNPARSABLE = "phone_unparsable"
    PHONE_INVALID = "phone_invalid"
    PHONE_NOT_MOBILE = "phone_not_mobile"
    LOCALE_UNSUPPORTED = "locale_unsupported"
    TIME_ZONE_UNKNOWN = "time_zone_unknown"


class AddressError(ValueError):
    """A contact detail or profile field that cannot be used, with a machine-readable reason."""

    def __init__(self, problem: AddressProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


def normalize_phone(raw: str, default_region: str = "PL") -> str:
    """The number in E.164 if it is a valid mobile number (SMS needs one), else AddressError."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise AddressError(AddressProblem.PHONE_UNPARSABLE,
                           "not a phone number; use E.164 such as +48512345678") from exc
    if not phonenumbers.is_valid_number(number):
        raise AddressError(AddressProblem.PHONE_INVALID,
                           "the number is not valid for its country")
    if phonenumbers.number_type(number) not in _SMS_TYPES:
        raise AddressError(AddressProblem.PHONE_NOT_MOBILE,
                           "the number is not a mobile number and cannot receive SMS")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_locale(locale: str) -> str:
    """The locale if supported, else AddressError listing the supported ones."""
    if locale not in SUPPORTED_LOCALES:
        raise AddressError(AddressProblem.LOCALE_UNSUPPORTED,
                           f"unsupported locale {locale!r}; supported: "
                           + ", ".join(SUPPORTED_LOCALES))
    return locale


def check_time_zone(name: str) -> str:
    """The IANA zone name if it exists, else AddressError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise AddressError(AddressProblem.TIME_ZONE_UNKNOWN,
                           f"unknown time zone {name!r}; use an IANA name such as "
                           "Europe/Warsaw") from exc
    return name
