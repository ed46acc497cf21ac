"""Routes of the preferences area: the customer API and the customer's own pages."""

from fastapi import APIRouter

from hub.api import customers, devices, preference_center

router = APIRouter()
router.include_router(customers.router)
router.include_router(devices.router)  # the carrier's app installations
router.include_router(preference_center.router)
