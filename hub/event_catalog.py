"""Event types by configuration: the packaged `hub/event_types.toml` plus an operator's
file (`HUB_EVENT_TYPES_FILE`) that adds types or overrides packaged ones, validated with
errors that name the file and line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hub.config_files import ConfigFileError, line_of, read_toml
from hub.events import Category, EventType
from hub.settings import Settings

BUILTIN_TYPES_FILE = Path(__file__).with_name("event_types.toml")
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_PATH = re.compile(r"^(customer|parcel|data)(\.[A-Za-z_][\w]*)+$")
_KEYS = {"category", "rank", "urgent", "required", "tenants", "description"}
_TENANT = re.compile(r"^[\w.-]{1,64}$")


def load_types(extra: str | Path | None = None) -> dict[str, EventType]:
    """The packaged types, then the operator's file on top (a type named in both takes the
    operator's definition). Raises ConfigFileError naming file and line."""
    types = parse_types_file(BUILTIN_TYPES_FILE)
    if extra:
        types.update(parse_types_file(Path(extra)))
    return types


def parse_types_file(path: Path) -> dict[str, EventType]:
    """One event types file: `[types."<name>"]` tables with category, rank, urgent,
    required (dotted paths such as "data.amount") and tenants (who may post it)."""
    raw, text = read_toml(path)
    unknown_top = set(raw) - {"types"}
    if unknown_top:
        key = sorted(unknown_top)[0]
        raise ConfigFileError(path, _top_line(text, key), f"unknown top-level key {key!r}; "
                              "event types go under [types.\"<name>\"]")
    tables = raw.get("types", {})
    if not isinstance(tables, dict):
        raise ConfigFileError(path, _top_line(text, "types"), "`types` must be a table")
    return {name: _parse_type(path, text, name, spec) for name, spec in tables.items()}


def _top_line(text: str, key: str) -> int | None:
    for number, raw in enumerate(text.splitlines(), start=1):
        if re.match(rf"^\s*\[?{re.escape(key)}\b", raw):
            return number
    return None


def _parse_type(path: Path, text: str, name: str, spec: Any) -> EventType:
    table = f'types."{name}"'

    def fail(problem: str, key: str | None = None) -> ConfigFileError:
        return ConfigFileError(path, line_of(text, table, key), f"event type {name!r}: {problem}")

    if not _NAME.match(name) or len(name) > 64:
        raise fail("the name must be dotted lower-case words, e.g. \"parcel.locker_opened\" "
                   "(at most 64 characters)")
    if not isinstance(spec, dict):
        raise fail("must be a table")
    for key in sorted(set(spec) - _KEYS):
        raise fail(f"unknown key {key!r} (known: {', '.join(sorted(_KEYS))})", key)
    categories = [c.value for c in Category]
    if spec.get("category") not in categories:
        raise fail(f"category must be one of {', '.join(categories)}", "category")
    rank, urgent = spec.get("rank", 0), spec.get("urgent", False)
    if not isinstance(rank, int) or isinstance(rank, bool) or not 0 <= rank <= 1000:
        raise fail("rank must be an integer from 0 to 1000", "rank")
    if not isinstance(urgent, bool):
        raise fail("urgent must be true or false", "urgent")
    required = spec.get("required", [])
    if not isinstance(required, list) or not all(isinstance(p, str) and _PATH.match(p)
                                                  for p in required):
        raise fail("required must be a list of dotted paths under customer, parcel or data, "
                   "e.g. [\"data.amount\", \"parcel.pickup_point.deadline\"]", "required")
    tenants = spec.get("tenants")
    if tenants is not None and (not isinstance(tenants, list) or not tenants
                                or not all(isinstance(t, str) and _TENANT.match(t)
                                           for t in tenants)):
        raise fail("tenants must be a non-empty list of tenant ids", "tenants")
    return EventType(name, Category(spec["category"]), rank, urgent, tuple(required),
                     tuple(tenants) if tenants is not None else None)


def missing_fields(payload: dict[str, Any], required: tuple[str, ...]) -> list[str]:
    """The required dotted paths absent (or null/empty) in an event payload."""
    missing = []
    for dotted in required:
        node: Any = payload
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None or node == "" or node == [] or node == {}:
            missing.append(dotted)
    return missing


def template_overlays(settings: Settings) -> tuple[Path, ...]:
    """The operator's template directory (HUB_TEMPLATES_DIR), if any."""
    return (Path(settings.templates_dir),) if settings.templates_dir else ()


def types_not_for(tenant: str, type_names: list[str]) -> list[str]:
    """The event types among `type_names` that the types file reserves for other tenants."""
    from hub.events import event_types

    known = event_types()
    return sorted({name for name in type_names
                   if tenant not in (known[name].tenants or (tenant,))})
