"""Customer traits: the producer's free key/values (loyalty tier, points, city, birthday
month...), flat and bounded so audiences can filter on them in SQL."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictBool, StrictFloat, StrictInt

MAX_KEYS = 50
MAX_TEXT = 200
NUMBER_LIMIT = 1e15  # the same bound the audience filter takes
KEY_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"

TraitKey = Annotated[str, Field(pattern=KEY_PATTERN)]
TraitValue = Annotated[str, Field(max_length=MAX_TEXT)] | StrictBool | StrictInt | StrictFloat


def _bounded(traits: dict[str, Any]) -> dict[str, Any]:
    for key, value in traits.items():
        if isinstance(value, bool | str):
            continue
        if not math.isfinite(value) or abs(value) > NUMBER_LIMIT:
            raise ValueError(f"trait {key!r}: numbers must be finite and at most 1e15")
    return traits


# Nesting (objects, lists) and null are refused by the value type itself.
Traits = Annotated[dict[TraitKey, TraitValue],
                   Field(max_length=MAX_KEYS), AfterValidator(_bounded)]
