"""Adapter discovery through the `hub.channels` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

GROUP = "hub.channels"


def adapter_classes() -> dict[str, Any]:
    """Every installed adapter class by its entry-point name."""
    return {ep.name: ep.load() for ep in entry_points(group=GROUP)}
