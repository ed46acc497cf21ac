"""Delivery feedback statistics: NPS and averages per pickup point, carrier and ISO week.

NPS = % promoters (9-10) - % detractors (0-6), from -100 to 100; passives (7-8) count in
the total only. Grouped in SQL (the week is stored with each answer, so no dialect-specific
date functions are needed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from hub.models import FeedbackResponse

PROMOTER_MIN = 9
DETRACTOR_MAX = 6


def _measures() -> list[Any]:
    score = FeedbackResponse.score
    return [func.count(FeedbackResponse.id), func.avg(score),
            func.sum(case((score >= PROMOTER_MIN, 1), else_=0)).cast(Integer),
            func.sum(case((score <= DETRACTOR_MAX, 1), else_=0)).cast(Integer)]


def _summary(count: int, average: Any, promoters: int | None, detractors: int | None
             ) -> dict[str, Any]:
    promoters, detractors = promoters or 0, detractors or 0
    return {
        "count": count,
        "average": round(float(average), 2) if count else None,
        "nps": round(100.0 * (promoters - detractors) / count, 1) if count else None,
        "promoters": promoters, "passives": count - promoters - detractors,
        "detractors": detractors,
    }


def aggregate(session: Session, tenant: str, since: datetime | None, until: datetime | None
              ) -> dict[str, Any]:
    """The tenant's answers recorded in [since, until): overall, per pickup point, per
    carrier and per ISO week, each with count, average score and NPS."""
    where: list[ColumnElement[bool]] = [FeedbackResponse.tenant == tenant]
    if since is not None:
        where.append(FeedbackResponse.recorded_at >= since)
    if until is not None:
        where.append(FeedbackResponse.recorded_at < until)
    overall = session.execute(select(*_measures()).where(*where)).one()
    out: dict[str, Any] = {"overall": _summary(*overall)}
    for name, column in (("pickup_point", FeedbackResponse.pickup_point),
                         ("carrier", FeedbackResponse.carrier),
                         ("week", FeedbackResponse.iso_week)):
        rows = session.execute(select(column, *_measures()).where(*where)
                               .group_by(column).order_by(column))
        out[f"by_{name}"] = [{name: key, **_summary(*rest)} for key, *rest in rows]
    return out
