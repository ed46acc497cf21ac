"""Geometry of the results chart: a rate with its 95 % interval per row, on a shared axis.

Plain numbers in, coordinates out; the page draws them as inline SVG (no script, no CDN), so
the escaping of labels stays with the page's autoescaping template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WIDTH, LEFT, RIGHT, ROW, TOP = 560, 120, 70, 34, 26


@dataclass(frozen=True, slots=True)
class Estimate:
    """One row: a label, the rate (None without recipients) and its 95 % interval."""

    label: str
    rate: float | None
    low: float | None
    high: float | None
    holdout: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    y: float
    label: str
    x: float | None
    x_low: float | None
    x_high: float | None
    text: str
    holdout: bool


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    left: int
    right: int
    ticks: list[tuple[float, str]]
    rows: list[Row]


def percent(value: float, lang: str = "pl") -> str:
    """A share as the page shows it: one decimal below 10 % (a comma in Polish)."""
    text = f"{value * 100:.1f}" if 0 < value < 0.1 else f"{value * 100:.0f}"
    return f"{text.replace('.', ',') if lang == 'pl' else text} %"


def points(value: float, lang: str = "pl") -> str:
    """A difference of two rates in percentage points, signed."""
    text = f"{value * 100:+.1f}"
    return f"{text.replace('.', ',') if lang == 'pl' else text} pp"


def _axis_top(highest: float) -> float:
    """A round upper end for the axis: 1, 2 or 5 × 10^k above the highest value."""
    if highest <= 0:
        return 0.01
    step = 10 ** math.floor(math.log10(highest))
    for factor in (1, 2, 5, 10):
        if factor * step >= highest:
            return min(1.0, factor * step)
    return 1.0


def chart(estimates: list[Estimate], lang: str = "pl") -> Chart:
    """Rows and axis ticks for the estimates (the axis starts at 0 and ends at a round
    value just above the highest interval end)."""
    highest = max((e.high or e.rate or 0.0 for e in estimates), default=0.0)
    top = _axis_top(highest)
    span = WIDTH - LEFT - RIGHT

    def x(value: float | None) -> float | None:
        return None if value is None else round(LEFT + span * min(value, top) / top, 1)

    rows = [Row(TOP + ROW * i + ROW / 2, e.label, x(e.rate), x(e.low), x(e.high),
                "—" if e.rate is None else percent(e.rate, lang), e.holdout)
            for i, e in enumerate(estimates)]
    ticks = [(float(x(top * k / 4) or LEFT), percent(top * k / 4, lang)) for k in range(5)]
    return Chart(WIDTH, TOP + ROW * len(estimates) + 24, LEFT, RIGHT, ticks, rows)
