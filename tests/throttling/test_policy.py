"""The policy file: the packaged default loads, a bad file names the bad field, overrides apply."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest

from throttling import CustomerOverrides, PolicyError, load_policy, parse_policy
from throttling.policy import effective_caps, parse_duration


def test_default_policy_file_has_the_documented_rules() -> None:
    policy = load_policy()
    caps = {rule.name: rule for rule in policy.caps}
    assert caps["marketing_sms_day"].limit == 2
    assert caps["marketing_sms_week"].window == timedelta(days=7)
    assert caps["marketing_4h"].channels == ("sms", "email", "push", "app_push")
    assert caps["transactional_burst"].limit == 10 and caps["transactional_burst"].per_channel
    assert (policy.quiet_hours.start, policy.quiet_hours.end) == (time(21), time(8))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[caps]]\nname = "x"\nlimit = 2\nwindow = "5 fortnights"', "caps.0.window"),
        ('[[caps]]\nname = "x"\nlimit = -1\nwindow = "1d"', "caps.0.limit"),
        ('[[caps]]\nname = "Bad Name"\nlimit = 1\nwindow = "1d"', "caps.0.name"),
        ('[[caps]]\nname = "x"\nlimit = 1\nwindow = "0s"', "longer than zero"),
        ('[[caps]]\nname = "x"\nlimit = 1\nwindow = "1d"\n[[caps]]\nname = "x"\nlimit = 2\n'
         'window = "1d"', "repeated: x"),
        ('[quiet_hours]\nstart = "25:00"', "quiet_hours.start"),
        ('[quiet_hourz]\nstart = "22:00"', "quiet_hourz"),
        ('[digest]\ndefault_hour = 24', "digest.default_hour"),
        ("[caps\n", "not valid TOML"),
    ],
)
def test_invalid_policy_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "policy.toml"
    file.write_text(text, "utf-8")
    with pytest.raises(PolicyError, match=message.replace(".", r"\.")) as info:
        load_policy(file)
    assert str(file) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot be read"):
        load_policy(tmp_path / "nope.toml")


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("4h", 14400),
                                               ("1d", 86400), ("2w", 1209600), (90, 90)])
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_customer_overrides_change_limits_and_add_their_own_cap() -> None:
    policy = load_policy()
    overrides = CustomerOverrides.from_mapping({
        "caps": {"marketing_sms_day": 1},
        "frequency": {"loyalty": {"limit": 1, "window": "7d"}},
        "unknown_key_from_preferences": True,
    })
    rules = {rule.name: rule for rule in effective_caps(policy, overrides)}
    assert rules["marketing_sms_day"].limit == 1
    assert rules["customer_loyalty"].categories == ("loyalty",)
    assert rules["customer_loyalty"].window == timedelta(days=7)


def test_bad_overrides_name_the_field() -> None:
    with pytest.raises(PolicyError, match=r"quiet_hours\.start"):
        CustomerOverrides.from_mapping({"quiet_hours": {"start": "9pm"}})


def test_parse_policy_from_plain_data() -> None:
    policy = parse_policy({"caps": [{"name": "a", "limit": 1, "window": "1h"}]})
    assert policy.caps[0].window == timedelta(hours=1)
