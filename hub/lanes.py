"""Priority lanes of the outbox: urgent transactional notices overtake a marketing backlog.

Every job gets a lane at intake. Claims take the urgent lane first, but each lower lane that
has work keeps a share of every batch (`FAIR_SHARE`), so a flood of urgent notices slows
marketing down without starving it.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any

from hub.events import Category, EventType

# A pickup notice is urgent only while its deadline is near; a week-long pickup window is not.
PICKUP_URGENT_WITHIN = timedelta(hours=24)
FAIR_SHARE = 0.1  # of each claimed batch, per lower lane that has work


class Lane(enum.StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"
    BULK = "bulk"


LANE_ORDER = (Lane.URGENT, Lane.NORMAL, Lane.BULK)


def lane_of(etype: EventType, payload: dict[str, Any], now: datetime) -> Lane:
    """The lane of an event: marketing and loyalty are bulk, urgent notices urgent."""
    if etype.category is not Category.TRANSACTIONAL:
        return Lane.BULK
    if not etype.urgent:
        return Lane.NORMAL
    deadline = ((payload.get("parcel") or {}).get("pickup_point") or {}).get("deadline")
    if "pickup" in etype.name and deadline:
        try:
            due = datetime.fromisoformat(str(deadline))
        except ValueError:
            return Lane.URGENT
        if due.tzinfo is not None and due - now > PICKUP_URGENT_WITHIN:
            return Lane.NORMAL
    return Lane.URGENT


def shares(limit: int, ready: dict[Lane, list[int]]) -> list[int]:
    """Job ids for one claim of `limit`: each lower lane first gets its fair share, then the
    rest goes by priority. `ready` holds each lane's ready ids, oldest first."""
    reserve = max(1, int(limit * FAIR_SHARE))
    picked: dict[Lane, list[int]] = {lane: [] for lane in LANE_ORDER}
    budget = limit
    for lane in LANE_ORDER[1:]:  # the guaranteed share of the lower lanes
        take = ready.get(lane, [])[:min(reserve, budget)]
        picked[lane], budget = take, budget - len(take)
    for lane in LANE_ORDER:  # then strictly by priority
        rest = [i for i in ready.get(lane, []) if i not in set(picked[lane])][:budget]
        picked[lane] += rest
        budget -= len(rest)
    return [i for lane in LANE_ORDER for i in picked[lane]]
