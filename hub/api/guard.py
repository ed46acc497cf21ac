"""ASGI middleware that refuses input the store or the serializers cannot hold, before routing.

JSON bodies are parsed once here with the rules of RFC 8259 rather than Python's looser
ones: NaN/Infinity are not JSON, a lone UTF-16 surrogate ("\\ud800") is not text any codec
can write, a NUL character cannot be stored in a PostgreSQL text column, and nesting deeper
than MAX_DEPTH overflows the serializers (pydantic, json.dumps) into a 500. The same NUL and
surrogate rules apply to the path, the query string and urlencoded forms. A refused request
answers 400 problem+json and reaches no handler, so nothing is half-written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hub.api.problems import PROBLEM_JSON, TYPE_BASE

MAX_DEPTH = 64  # an event is ~4 levels deep; free-form `data` gets the rest


class InputRefused(ValueError):
    """Why a request was refused: a problem slug and a detail safe to echo."""

    def __init__(self, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.slug, self.detail = slug, detail


def _no_constant(name: str) -> Any:
    raise InputRefused("malformed-json", f"{name} is not a JSON number.")


def check_text(text: str, where: str) -> None:
    """Refuses NUL characters and lone surrogates in one string."""
    if "\x00" in text:
        raise InputRefused("invalid-text", f"{where} contains a NUL character.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputRefused("invalid-text", f"{where} contains an unpaired surrogate.") from exc


def check_json(body: bytes) -> None:
    """Parses a JSON body strictly and walks it (iteratively: depth, text of keys and values)."""
    try:
        value = json.loads(body, parse_constant=_no_constant)
    except RecursionError as exc:
        raise InputRefused("nesting-too-deep", f"JSON nested deeper than {MAX_DEPTH}.") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, InputRefused):
            raise
        return  # not JSON at all: the handler answers malformed-json as before
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, "a JSON string")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise InputRefused("nesting-too-deep", f"JSON nested deeper than {MAX_DEPTH}.")
            if isinstance(item, dict):
                for key in item:
                    check_text(key, "a JSON key")
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)


def _check_form(body: bytes) -> None:
    lowered = body.lower()
    if b"\x00" in body or b"%00" in lowered:
        raise InputRefused("invalid-text", "the form contains a NUL character.")


def _check_target(scope: dict[str, Any]) -> None:
    check_text(scope.get("path", ""), "the path")
    query = bytes(scope.get("query_string") or b"").lower()
    if b"%00" in query or b"\x00" in query:
        raise InputRefused("invalid-text", "the query string contains a NUL character.")


def _body_check(scope: dict[str, Any]) -> Callable[[bytes], None] | None:
    headers = dict(scope.get("headers") or [])
    kind = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    if kind == b"application/json" or kind.endswith(b"+json"):
        return check_json
    if kind == b"application/x-www-form-urlencoded":
        return _check_form
    return None


class InputGuard:
    """Refuses (400) NUL, lone surrogates, NaN/Infinity and over-deep JSON anywhere in a request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            _check_target(scope)
        except InputRefused as refused:
            await _refuse(scope, send, refused)
            return
        check = _body_check(scope)
        if check is None:
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:  # the size limit outside this middleware bounds what is buffered
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            check(body)
        except InputRefused as refused:
            await _refuse(scope, send, refused)
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            message: dict[str, Any] = await receive()
            return message

        await self.app(scope, replay, send)


async def _refuse(scope: dict[str, Any], send: Any, refused: InputRefused) -> None:
    body = json.dumps({"type": TYPE_BASE + refused.slug, "title": "Bad request", "status": 400,
                       "detail": refused.detail, "instance": scope.get("path", "")},
                      ensure_ascii=True).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", PROBLEM_JSON.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
