"""Logs reveal no address: phone numbers in every common writing and internationalised e-mail
addresses are masked in event names, values, nested structures and exception text."""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.logs import configure, get_logger, mask_text

TABLE = [
    ("call 512 345 678 now", "call ***678 now"),
    ("512-345-678", "***678"),
    ("512.345.678", "***678"),
    ("(22) 123 45 67", "***567"),
    ("+48 22 123 45 67", "***567"),
    ("+48 512 345 678", "***678"),
    ("+48512345678", "***678"),
    ("0048 512 345 678", "***678"),
    ("+48 (22) 123-45-67", "***567"),
    ("tel:+48512345678;", "tel:***678;"),
    ("zażółć@example.pl", "z***@example.pl"),
    ("用户@例子.中国", "用***@例子.中国"),
    ("Ścibor.Żółć+news@poczta.example.com.pl", "Ś***@poczta.example.com.pl"),
    ("jan.nowak@example.pl", "j***@example.pl"),
]
KEPT = ["2026-11-25T14:20:00+01:00", "2026-11-25 14:20:00", "PL0001234567", "evt-1",
        "notification 12345", "took 0.25 s", "WAW123M"]


@pytest.mark.parametrize(("text", "masked"), TABLE)
def test_mask_table(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize("text", KEPT)
def test_ids_dates_and_durations_are_kept(text: str) -> None:
    assert mask_text(text) == text


def _formats(digits: str) -> list[str]:
    a, b, c = digits[:3], digits[3:6], digits[6:]
    return [digits, f"{a} {b} {c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"+48 {a} {b} {c}",
            f"+48{digits}", f"0048{digits}", f"({digits[:2]}) {digits[2:5]} {digits[5:7]} {c[1:]}",
            f"+48 {digits[:2]} {digits[2:5]} {digits[5:7]} {digits[7:]}"]


NATIONAL = st.from_regex(r"\A[4-8][0-9]{8}\Z")
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyząęółśżźćń ,:;=/", max_size=20)


@settings(max_examples=300, deadline=None)
@given(NATIONAL, st.integers(0, 8), WORDS, WORDS)
def test_no_polish_number_survives(national: str, style: int, before: str, after: str) -> None:
    text = f"{before} {_formats(national)[style]} {after}"
    out = mask_text(text)
    assert national[:6] not in re.sub(r"[^0-9]", "", out), (text, out)


LOCAL = st.text(alphabet="abcżółćęśąź用户ÄÖüß.+-_0123", min_size=2, max_size=12).filter(
    lambda s: s[0] not in ".+-" and s[-1] != "." and ".." not in s)
DOMAIN = st.sampled_from(["example.pl", "例子.中国", "poczta.żółw.pl", "mail.example.com"])


@settings(max_examples=300, deadline=None)
@given(LOCAL, DOMAIN, WORDS)
def test_no_internationalised_address_survives(local: str, domain: str, words: str) -> None:
    out = mask_text(f"{words} <{local}@{domain}> {words}")
    assert f"{local}@" not in out and local[1:] + "@" not in out, out


def test_logged_names_values_nested_and_exceptions_are_masked() -> None:
    stream = io.StringIO()
    configure("INFO", json=True, stream=stream)
    log = get_logger("test")
    try:
        log.info("sms to 512 345 678 failed", to="zażółć@example.pl",
                 nested={"who": {"phone": "512.345.678", "list": ["(22) 123 45 67"]},
                         "用户@例子.中国": 1})
        try:
            raise ValueError("bounced: Ścibor@poczta.example.com.pl, +48 512-345-678")
        except ValueError:
            log.exception("send failed")
        log.warning("failed", error=ValueError("to 512 345 678"))
    finally:
        configure("INFO", json=True)
    text = stream.getvalue()
    for secret in ("512 345 678", "512.345.678", "512-345-678", "123 45 67", "zażółć@",
                   "用户@", "Ścibor@", "512345678"):
        assert secret not in text, (secret, text)
    records = [json.loads(line) for line in text.splitlines()]
    assert records[0]["event"] == "sms to ***678 failed"
    assert "***678" in records[1]["exception"]
