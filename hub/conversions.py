"""Conversions reported by producers, attributed to the customer's last click.

The last counted click of the customer that happened before the conversion and within the
attribution window (`HUB_CONVERSION_WINDOW_DAYS`, 7) gets the credit: its campaign, variant
and click id are stored with the conversion. A conversion that names a campaign is credited
only to a click of that campaign. `external_id` is the idempotency key (per tenant): the
same body again returns the stored conversion, another body under the same id is refused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import activity
from hub.audience_models import Conversion, LinkClick
from hub.db import utcnow


@dataclass(frozen=True, slots=True)
class ConversionIn:
    """A validated conversion of one of the tenant's customers (`customer_pk`)."""

    external_id: str
    customer_id: str
    customer_pk: int
    value: Decimal
    currency: str
    occurred_at: datetime
    campaign_id: int | None = None

    def digest(self) -> str:
        """What makes two posts of one external id the same conversion."""
        body = [self.customer_id, str(self.value.normalize()), self.currency,
                self.occurred_at.isoformat(), self.campaign_id]
        return hashlib.sha256(json.dumps(body).encode()).hexdigest()


class ConversionConflict(Exception):
    """The external id is taken by a conversion with another body."""


def last_click(session: Session, customer_pk: int, before: datetime, window: timedelta,
               campaign_id: int | None = None) -> LinkClick | None:
    """The customer's latest counted click in [before - window, before]."""
    query = select(LinkClick).where(LinkClick.customer_pk == customer_pk,
                                    LinkClick.clicked_at <= before,
                                    LinkClick.clicked_at >= before - window)
    if campaign_id is not None:
        query = query.where(LinkClick.campaign_id == campaign_id)
    return session.scalar(query.order_by(LinkClick.clicked_at.desc(), LinkClick.id.desc())
                          .limit(1))


def record(session: Session, tenant: str, conversion: ConversionIn, window: timedelta
           ) -> tuple[Conversion, bool]:
    """Stores the conversion with its attribution; (row, True) when new, (stored row, False)
    for a repeat of the same body. Raises ConversionConflict for another body."""
    digest = conversion.digest()
    stored = session.scalar(select(Conversion).where(
        Conversion.tenant == tenant, Conversion.external_id == conversion.external_id))
    if stored is not None:
        if stored.body_hash != digest:
            raise ConversionConflict(conversion.external_id)
        return stored, False
    click = last_click(session, conversion.customer_pk, conversion.occurred_at, window,
                       conversion.campaign_id)
    row = Conversion(tenant=tenant, customer_pk=conversion.customer_pk,
                     external_id=conversion.external_id, value=conversion.value,
                     currency=conversion.currency, occurred_at=conversion.occurred_at,
                     recorded_at=utcnow(), body_hash=digest,
                     campaign_id=click.campaign_id if click else conversion.campaign_id,
                     variant=click.variant if click else None,
                     click_id=click.id if click else None)
    session.add(row)
    session.flush()
    activity.note_conversion(session, tenant, conversion.customer_pk, conversion.occurred_at,
                             conversion.value)
    return row, True
