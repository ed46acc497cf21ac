"""Operator-edited TOML files (event types, follow-up rules): read them and report a problem
as `file:line: message`, so a broken file stops the hub with a message that says where."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

_DECODE_LINE = re.compile(r"\(at line (\d+), column \d+\)")


class ConfigFileError(ValueError):
    """A configuration file is unreadable, not TOML, or says something the hub refuses."""

    def __init__(self, path: Path | str, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed file and its text (kept to find the line of a semantic error)."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigFileError(path, None, f"cannot be read: {exc.strerror or exc}") from exc
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        found = _DECODE_LINE.search(str(exc))
        message = _DECODE_LINE.sub("", str(exc)).strip()
        raise ConfigFileError(path, int(found.group(1)) if found else None,
                              f"not valid TOML: {message}") from exc


def line_of(text: str, table: str, key: str | None = None) -> int | None:
    """The 1-based line of `[table]` (dotted names, quoted or not), or of `key = ...` inside
    that table; None when it cannot be located (the message still names the table)."""
    parts = [p.strip().strip('"') for p in _split_dotted(table)]
    header = None
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            name = stripped.strip("[]").split("#")[0].strip()
            inside = [p.strip().strip('"') for p in _split_dotted(name)] == parts
            if header is not None and not inside:
                break
            if inside:
                header = number
                if key is None:
                    return number
        elif (header is not None and key is not None
              and re.match(rf'^"?{re.escape(key)}"?\s*=', stripped)):
            return number
    return header


def _split_dotted(name: str) -> list[str]:
    """`types."parcel.x"` → ['types', '"parcel.x"'] (dots inside quotes are kept)."""
    return re.findall(r'"[^"]*"|[^.]+', name)
