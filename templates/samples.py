"""Sample events and profiles for previews, the whole-matrix test and the benchmark."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

# "Now" for samples: the afternoon before the deadline, so relative days read "jutro".
SAMPLE_NOW = datetime.fromisoformat("2026-11-25T15:00:00+01:00")

PROFILES: dict[str, dict[str, Any]] = {
    "pl": {"name": "Anna Kowalska", "segment": "individual", "time_zone": "Europe/Warsaw"},
    "en": {"name": "James Carter", "segment": "individual", "time_zone": "Europe/Warsaw"},
    "uk": {"name": "Олена Шевченко", "segment": "individual", "time_zone": "Europe/Warsaw"},
    "de": {"name": "Jonas Becker", "segment": "individual", "time_zone": "Europe/Berlin"},
}
BUSINESS_PROFILE = {"name": "Hurtownia Kowalski sp. z o.o.", "segment": "business",
                    "time_zone": "Europe/Warsaw"}

_TRACK = "PL0001234567"
_PARCEL: dict[str, Any] = {
    "tracking_number": _TRACK,
    "carrier": "demo-carrier",
    "links": {"track": f"https://track.example.pl/{_TRACK}",
              "reschedule": f"https://track.example.pl/{_TRACK}/reschedule"},
    "eta": {"from": "2026-11-26T10:00:00+01:00", "to": "2026-11-26T12:00:00+01:00"},
}
_PICKUP = {"id": "WAW123M", "name": "Paczkomat WAW123M",
           "address": "ul. Marszałkowska 10, 00-001 Warszawa", "code": "482913",
           "deadline": "2026-11-26T19:40:00+01:00"}

_EXTRA: dict[str, dict[str, Any]] = {
    "parcel.out_for_delivery": {"parcel": {"cod": {"amount": "129.90", "currency": "PLN"},
                                           "eta": {"from": "2026-11-25T16:00:00+01:00",
                                                   "to": "2026-11-25T18:00:00+01:00"}}},
    "parcel.delivery_attempt_failed": {"data": {"attempt": 1, "attempts_left": 1}},
    "parcel.ready_for_pickup": {"parcel": {"pickup_point": _PICKUP,
                                           "cod": {"amount": "129.90", "currency": "PLN"}}},
    "parcel.pickup_reminder": {"parcel": {"pickup_point": _PICKUP},
                               "data": {"parcels_waiting": 2, "hours_left": 24}},
    "parcel.delayed": {"parcel": {"eta": {"from": "2026-11-27T10:00:00+01:00",
                                          "to": "2026-11-27T14:00:00+01:00"}}},
    "parcel.delivery_rescheduled": {"parcel": {"eta": {"from": "2026-11-28T08:00:00+01:00",
                                                       "to": "2026-11-28T12:00:00+01:00"}}},
    "parcel.customs_payment_required": {"parcel": {"customs": {
        "amount": "48.20", "currency": "PLN",
        "pay_url": f"https://track.example.pl/{_TRACK}/customs"}}},
    "loyalty.points_earned": {"data": {"points": 25, "balance": 1240}},
    "loyalty.tier_reached": {"data": {"tier": "Gold", "benefit": "darmowe zwroty"}},
    "loyalty.points_expiring": {"data": {"points": 112,
                                         "expires_at": "2026-11-30T23:59:00+01:00"}},
    "loyalty.points_expiry_reminder": {"data": {"points": 112, "days_left": 7,
                                                "expires_at": "2026-11-30T23:59:00+01:00"}},
    "marketing.campaign": {"data": {"title": "Black Week: wysyłka -20%",
                                    "body": "Nadaj paczkę do niedzieli taniej o 20%.",
                                    "url": "https://parcelhub.example/black-week"}},
    "loyalty.campaign": {"data": {"title": "Podwójne punkty w grudniu",
                                  "body": "Do końca miesiąca punkty za paczki liczymy podwójnie.",
                                  "url": "https://parcelhub.example/punkty"}},
}
NON_PARCEL = ("loyalty.", "marketing.", "digest")


# Free-form copy that the loyalty and campaign systems send in the customer's language.
_LOCAL_DATA: dict[str, dict[str, dict[str, Any]]] = {
    "loyalty.tier_reached": {
        "en": {"benefit": "free returns"}, "uk": {"benefit": "безкоштовне повернення"},
        "de": {"benefit": "kostenlose Retouren"}},
    "marketing.campaign": {
        "en": {"title": "Black Week: 20% off shipping",
               "body": "Send a parcel by Sunday and pay 20% less."},
        "uk": {"title": "Black Week: доставка -20%",
               "body": "Надсилайте посилки до неділі на 20% дешевше."},
        "de": {"title": "Black Week: 20 % Rabatt auf den Versand",
               "body": "Bis Sonntag Pakete 20 % günstiger verschicken."}},
    "loyalty.campaign": {
        "en": {"title": "Double points in December",
               "body": "Every parcel earns double points this month."},
        "uk": {"title": "Подвійні бали в грудні",
               "body": "До кінця місяця бали за посилки подвійні."},
        "de": {"title": "Doppelte Punkte im Dezember",
               "body": "Bis Monatsende zählt jedes Paket doppelt."}},
}


def sample_event(event_type: str, locale: str = "pl") -> dict[str, Any]:
    """A realistic event payload of a type (wire shape), free-form data in `locale`."""
    extra = copy.deepcopy(_EXTRA.get(event_type, {}))
    if locale in _LOCAL_DATA.get(event_type, {}):
        extra["data"] = {**extra.get("data", {}), **_LOCAL_DATA[event_type][locale]}
    parcel = None if event_type.startswith(NON_PARCEL) else {
        **copy.deepcopy(_PARCEL), **extra.get("parcel", {})}
    event: dict[str, Any] = {"event_id": f"sample-{event_type}", "type": event_type,
                             "occurred_at": "2026-11-25T14:20:00+01:00",
                             "data": extra.get("data", {})}
    if parcel:
        event["parcel"] = parcel
    return event


def sample_digest_items(locale: str = "pl") -> list[dict[str, Any]]:
    """Held loyalty and marketing payloads, as throttling would group them."""
    return [sample_event(t, locale) for t in
            ("loyalty.points_earned", "loyalty.points_expiring", "marketing.campaign")]
