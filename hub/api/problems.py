"""RFC 9457 problem details: every error the API returns has this shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.logs import get_logger

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://parcelhub.example/problems/"
log = get_logger("api")

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(self, status: int, slug: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail, self.extra = status, slug, detail, extra


def problem_response(
    status: int, slug: str, detail: str, instance: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if isinstance(extra.get("retry_after"), int):  # 429: when to come back (RFC 9110)
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] == "body":
            loc = loc[1:]
        errors.append({"path": "/".join(loc) or "(body)", "message": err.get("msg", ""),
                       "code": err.get("type", "invalid")})
    return errors


def install(app: FastAPI) -> None:
    """Registers the handlers that turn every error into problem+json."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.slug, exc.detail, request.url.path, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        if any(e["code"] == "json_invalid" for e in errors):
            return problem_response(400, "malformed-json", "The request body is not valid JSON.",
                                    request.url.path)
        detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors[:5])
        return problem_response(422, "validation", detail, request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = _TITLES.get(exc.status_code, "error").lower().replace(" ", "-")
        return problem_response(exc.status_code, slug, str(exc.detail), request.url.path)

    @app.exception_handler(DBAPIError)
    async def _store_down(request: Request, exc: DBAPIError) -> JSONResponse:
        if not exc.connection_invalidated and not isinstance(exc, OperationalError):
            return await _unexpected(request, exc)
        log.warning("store_unavailable", path=request.url.path, error=type(exc.orig).__name__)
        reply = problem_response(503, "store-unavailable",
                                 "The store is unavailable; nothing was written. Retry shortly.",
                                 request.url.path)
        reply.headers["Retry-After"] = "2"
        return reply

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        return problem_response(500, "internal", "An unexpected error occurred; it was logged.",
                                request.url.path)


# --- OpenAPI: every operation declares the problem documents it can answer ---------------

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; extension members vary by problem type.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer"}, "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}
# What any operation can answer: unparseable or unstorable input (400, hub.api.guard), a
# body over the limit (413), a failed validation (422), a bug (500), the store down (503).
_ALWAYS = {400: "Malformed or unstorable input (bad JSON, NUL, lone surrogate, too deep)",
           413: "Request body too large", 422: "Validation failed",
           500: "Internal server error (logged)", 503: "Store unavailable; nothing written"}
_AUTHENTICATED = {401: "No valid API key", 403: "The key lacks the required scope (or a "
                  "customer token was used outside its customer's inbox and preferences)"}
_WITH_PATH_ID = {404: "No such resource"}
# Route families with answers of their own (matched by path prefix).
_BY_PREFIX = {
    "/v1/customers/{": {410: "The customer was erased on request"},
    "/v1/inbox/{": {410: "The customer was erased on request"},
    "/v1/webhooks/": {401: "Signature missing", 403: "Signature wrong or replayed",
                      404: "This provider is not configured"},
    "/v1/push/vapid-public-key": {404: "Web Push is not configured"},
}


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _declare(operation: dict[str, Any], path: str) -> None:
    responses = operation.setdefault("responses", {})
    wanted = dict(_ALWAYS)
    if operation.get("security"):
        wanted.update(_AUTHENTICATED)
    if "{" in path:
        wanted.update(_WITH_PATH_ID)
    for prefix, extra in _BY_PREFIX.items():
        if path.startswith(prefix):
            wanted.update(extra)
    for code in [c for c in responses if c.isdigit() and int(c) >= 400]:
        wanted.setdefault(int(code), responses[code].get("description") or "Error")
    for code, description in wanted.items():
        known = responses.get(str(code), {})
        responses[str(code)] = {"description": known.get("description") or description,
                                "content": _problem_content()}


def declare_problems(app: FastAPI) -> None:
    """Makes the app's OpenAPI declare problem+json (schema `Problem`) for every error status
    an operation can answer, replacing FastAPI's default 422 (HTTPValidationError)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version,
                           description=app.description, routes=app.routes)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for path, item in spec.get("paths", {}).items():
            for operation in item.values():
                if isinstance(operation, dict) and "responses" in operation:
                    _declare(operation, path)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
