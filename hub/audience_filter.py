"""The audience filter language: a small JSON tree validated by pydantic.

A filter is one condition; a condition is a group (`all`, `any`, `not`), a field test
(`{"field": "activity.parcels_90d", "op": "gte", "value": 3}`), a consent test
(`{"consent": {"purpose": "marketing", "channels": ["email", "push"], "any": true}}`) or a
reachability test (`{"reachable": {"channels": ["sms"]}}`). `hub.audience_sql` compiles a
validated filter to one SQL condition. Unknown fields, operators or value types are
refused with the path of the offending part."""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    field_validator,
    model_validator,
)

from preferences.model import CHANNELS

MAX_DEPTH = 6  # nested groups
MAX_CONDITIONS = 60  # conditions in the whole tree
MAX_LIST = 200  # values of an `in`
MAX_DAYS = 3660
TRAIT_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
PURPOSES = ("marketing", "loyalty")
NUMBER_LIMIT = 1e15  # |numbers| in filters and traits


class Kind(enum.StrEnum):
    """What a field holds, which decides the operators it takes."""

    TEXT = "text"
    NUMBER = "number"
    TIME = "time"
    TRAIT = "trait"


class Op(enum.StrEnum):
    EQ = "eq"
    NE = "ne"
    IN = "in"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    EXISTS = "exists"
    WITHIN_DAYS = "within_days"  # the time lies in the last N days
    NOT_WITHIN_DAYS = "not_within_days"  # never, or longer than N days ago


_OPS: dict[Kind, frozenset[Op]] = {
    Kind.TEXT: frozenset({Op.EQ, Op.NE, Op.IN, Op.EXISTS}),
    Kind.NUMBER: frozenset({Op.EQ, Op.NE, Op.IN, Op.GT, Op.GTE, Op.LT, Op.LTE}),
    Kind.TIME: frozenset({Op.WITHIN_DAYS, Op.NOT_WITHIN_DAYS, Op.EXISTS}),
    Kind.TRAIT: frozenset({Op.EQ, Op.NE, Op.IN, Op.GT, Op.GTE, Op.LT, Op.LTE, Op.EXISTS}),
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    kind: Kind
    choices: tuple[str, ...] = ()  # allowed text values, when the set is closed


# The fields a filter may name (traits are `traits.<key>`).
FIELDS: dict[str, FieldSpec] = {
    "locale": FieldSpec(Kind.TEXT, ("pl", "en", "uk", "de")),
    "segment": FieldSpec(Kind.TEXT, ("individual", "business")),
    "tone": FieldSpec(Kind.TEXT, ("formal", "informal")),
    "time_zone": FieldSpec(Kind.TEXT),
    "phone_country": FieldSpec(Kind.TEXT),  # ISO region of the number's calling code
    "created_at": FieldSpec(Kind.TIME),
    "activity.last_parcel_at": FieldSpec(Kind.TIME),
    "activity.last_click_at": FieldSpec(Kind.TIME),
    "activity.last_conversion_at": FieldSpec(Kind.TIME),
    "activity.parcels_30d": FieldSpec(Kind.NUMBER),
    "activity.parcels_90d": FieldSpec(Kind.NUMBER),
    "activity.parcels_365d": FieldSpec(Kind.NUMBER),
    "activity.conversions_count": FieldSpec(Kind.NUMBER),
    "activity.conversions_value": FieldSpec(Kind.NUMBER),
    "activity.last_delivery_method": FieldSpec(Kind.TEXT, ("pickup_point", "courier")),
    "activity.rfm": FieldSpec(Kind.TEXT),
    "activity.rfm_recency": FieldSpec(Kind.NUMBER),
    "activity.rfm_frequency": FieldSpec(Kind.NUMBER),
    "activity.rfm_monetary": FieldSpec(Kind.NUMBER),
}



def field_spec(name: str) -> FieldSpec:
    """The spec of a field name; ValueError naming the known fields when unknown."""
    if name.startswith("traits."):
        if not TRAIT_KEY.match(name.removeprefix("traits.")):
            raise ValueError("a trait key is lowercase letters, digits and _ (max 40)")
        return FieldSpec(Kind.TRAIT)
    spec = FIELDS.get(name)
    if spec is None:
        raise ValueError(f"unknown field {name!r}; known: {', '.join(FIELDS)}, traits.<key>")
    return spec


def _check_number(value: Any) -> None:
    if isinstance(value, float) and (not math.isfinite(value) or abs(value) > NUMBER_LIMIT):
        raise ValueError("numbers must be finite and at most 1e15")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > NUMBER_LIMIT:
        raise ValueError("numbers must be at most 1e15")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConsentTest(_Strict):
    """A current (unwithdrawn) consent for the purpose on any (or every) of the channels."""

    purpose: Literal["marketing", "loyalty"]
    channels: list[Literal["sms", "email", "push"]] = Field(min_length=1, max_length=3)
    any: bool = True  # any of the channels (true) or every one of them (false)


class ReachableTest(_Strict):
    """A usable address on any (or every) of the channels (verified phone/e-mail, live
    push subscription)."""

    channels: list[Literal["sms", "email", "push"]] = Field(min_length=1, max_length=3)
    any: bool = True


_KINDS = ("all", "any", "not", "field", "consent", "reachable")


class Condition(_Strict):
    """One node of a filter: exactly one of a group (`all`, `any`, `not`), a field test
    (`field`, `op`, `value`), a consent test or a reachability test. One model rather than
    a union, so an error's path is the path in the JSON (`all/0/field`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    all: list[Condition] | None = Field(default=None, min_length=1, max_length=MAX_CONDITIONS)
    any: list[Condition] | None = Field(default=None, min_length=1, max_length=MAX_CONDITIONS)
    not_: Condition | None = Field(default=None, alias="not")
    field: str | None = Field(default=None, max_length=60)
    op: Op | None = None
    value: Any = None  # text, number, boolean or a list of them (checked below)
    consent: ConsentTest | None = None
    reachable: ReachableTest | None = None

    @property
    def kind(self) -> str:
        """Which of all, any, not, field, consent, reachable this node is."""
        return next(k for k in _KINDS if getattr(self, "not_" if k == "not" else k) is not None)

    @field_validator("field")
    @classmethod
    def _known(cls, name: str | None) -> str | None:
        if name is not None:
            field_spec(name)
        return name

    @field_validator("value")
    @classmethod
    def _scalar(cls, value: Any) -> Any:
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str | bool | int | float):
                raise ValueError("a value is text, a number, true or false (or a list of them)")
            if isinstance(item, str) and len(item) > 200:
                raise ValueError("text values are at most 200 characters")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        given = [k for k in _KINDS if getattr(self, "not_" if k == "not" else k) is not None]
        if len(given) != 1:
            raise ValueError("a condition has exactly one of the keys " + ", ".join(_KINDS))
        if given[0] == "field":
            self._check_field()
        elif self.op is not None or self.value is not None:
            raise ValueError("`op` and `value` belong to a field test")
        return self

    def _check_field(self) -> None:
        assert self.field is not None
        spec = field_spec(self.field)
        if self.op is None or self.op not in _OPS[spec.kind]:
            allowed = ", ".join(sorted(_OPS[spec.kind]))
            raise ValueError(f"{self.field} takes the operators {allowed}")
        values = self.value if isinstance(self.value, list) else [self.value]
        if self.op is Op.EXISTS:
            if not isinstance(self.value, bool):
                raise ValueError("exists takes true or false")
            return
        if (self.op is Op.IN) != isinstance(self.value, list):
            raise ValueError("`in` takes a list of values; other operators one value")
        if len(values) > MAX_LIST or not values:
            raise ValueError(f"`in` takes 1 to {MAX_LIST} values")
        for value in values:
            self._check_value(spec, value)

    def _check_value(self, spec: FieldSpec, value: Any) -> None:
        if self.op in (Op.WITHIN_DAYS, Op.NOT_WITHIN_DAYS):
            if not isinstance(value, int) or isinstance(value, bool) or not (
                    0 < value <= MAX_DAYS):
                raise ValueError(f"{self.op} takes a whole number of days, 1 to {MAX_DAYS}")
            return
        if value is None:
            raise ValueError("a value is needed")
        if spec.kind is Kind.TEXT and not isinstance(value, str):
            raise ValueError(f"{self.field} takes text")
        if spec.choices and value not in spec.choices:
            raise ValueError(f"{self.field} is one of {', '.join(spec.choices)}")
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if (spec.kind is Kind.NUMBER or self.op in (Op.GT, Op.GTE, Op.LT, Op.LTE)
                ) and not numeric:
            raise ValueError(f"{self.field} {self.op} takes a number")
        _check_number(value)


class AudienceFilter(RootModel[Condition]):
    """A whole filter: its root condition, checked for depth and size."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="after")
    def _bounded(self) -> AudienceFilter:
        depth, size = _measure(self.root)
        if depth > MAX_DEPTH:
            raise ValueError(f"the filter nests deeper than {MAX_DEPTH} groups")
        if size > MAX_CONDITIONS:
            raise ValueError(f"the filter has more than {MAX_CONDITIONS} conditions")
        return self


def children(node: Condition) -> list[Condition]:
    """The conditions a group holds (none for a test)."""
    return node.all or node.any or ([node.not_] if node.not_ is not None else [])


def _measure(node: Condition) -> tuple[int, int]:
    """(group depth, number of conditions) of a condition tree."""
    inner = children(node)
    if not inner:
        return 0, 1
    measured = [_measure(c) for c in inner]
    return 1 + max(d for d, _ in measured), 1 + sum(s for _, s in measured)


def parse_filter(raw: Any) -> AudienceFilter:
    """A filter from JSON (as stored: `AudienceFilter.model_dump(by_alias=True,
    exclude_none=True)`); pydantic's ValidationError names the offending path."""
    return AudienceFilter.model_validate(raw)


__all__ = ["CHANNELS", "PURPOSES", "AudienceFilter", "Condition", "children", "parse_filter"]
