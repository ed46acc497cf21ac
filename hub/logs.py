"""Structured JSON logs (structlog) that never carry a full phone number or e-mail address."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

# Internationalised addresses too (RFC 6531): \w is Unicode-aware, so "zażółć@example.pl"
# and "用户@例子.中国" match like ASCII ones. The first character and the domain stay.
_EMAIL = re.compile(r"([\w%+-])[\w.%+-]*@((?:[\w-]+\.)+[\w-]{2,})")
# A phone number in any common writing: E.164 with or without spaces, national Polish
# formats ("512 345 678", "512-345-678", "512.345.678", "(22) 123 45 67"), 00-prefixed. A
# candidate is 7 to 15 digits joined by at most two separators; `_phone` then keeps those
# with at least 9 digits that are not a date, and shows only the last three.
# Letters or digits around it mean an identifier (PL0001234567); an underscore does not.
_PHONE = re.compile(r"(?<![^\W_]|\+)\+?\(?[0-9](?:[ .\-()/]{0,2}[0-9]){6,14}(?![^\W_])")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SECRET_KEYS = {"authorization", "x-api-key", "api_key", "token", "password", "secret"}


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = [c for c in text if c.isdigit()]
    if len(digits) < 9 or _DATE.match(text):
        return text
    return "***" + "".join(digits[-3:])


def mask_text(text: str) -> str:
    """Masks e-mail addresses and phone numbers inside free text."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(_phone, text)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {_mask(k): "***" if str(k).lower() in _SECRET_KEYS else _mask(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask(v) for v in value]
    if isinstance(value, BaseException):  # an exception passed as a value, not via exc_info
        return mask_text(f"{type(value).__name__}: {value}")
    return value


def _mask_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return _mask(event_dict)  # type: ignore[no-any-return]


def configure(level: str = "INFO", json: bool = True, stream: Any = None) -> None:
    """Sets up structlog (and stdlib logging) once per process."""
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # tracebacks become plain text here (no frame locals), then are masked like the rest
            structlog.processors.format_exc_info,
            _mask_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A bound structlog logger with the component name."""
    return structlog.get_logger(component=name)
