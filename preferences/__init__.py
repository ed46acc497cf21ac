"""Customer profiles, preferences, consent and the resolver (pure: no I/O)."""

from preferences.model import Profile, Resolution, Route, RouteAction, SkipReason
from preferences.resolver import resolve

__all__ = ["Profile", "Resolution", "Route", "RouteAction", "SkipReason", "resolve"]
