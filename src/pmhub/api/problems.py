"""Errors as RFC 9457 problem+json: the same typed errors the CLI prints, never a 5xx page.

A :class:`~pmhub.errors.PmhubError` keeps its message, hint and exit code; FastAPI's own
validation errors name the fields; anything unexpected becomes a 500 problem without
internals (the traceback goes to the server log, never to the client).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pmhub.errors import PmhubError

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("pmhub.api")

# Shown in the OpenAPI schema for every operation's error responses.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "hint": {"type": "string"},
        "code": {"type": "integer", "description": "the CLI's exit code for this error"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


def problem(status: int, title: str, detail: str = "", **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def from_error(exc: PmhubError) -> JSONResponse:
    name = type(exc).__name__
    return problem(
        exc.http_status,
        _words(name.removesuffix("Error")),
        exc.message,
        hint=exc.hint,
        code=exc.exit_code,
        type=f"https://pmhub.invalid/problems/{name}",
    )


def _words(camel: str) -> str:
    out = "".join(f" {c.lower()}" if c.isupper() else c for c in camel).strip()
    return out[:1].upper() + out[1:] if out else "Error"


async def _pmhub_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PmhubError)
    return from_error(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))[:300]}
        for e in exc.errors()[:50]
    ]
    where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
    return problem(422, "Invalid request", where, errors=errors)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(exc.status_code, _http_title(exc.status_code), str(exc.detail or ""))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem(500, "Internal error", "the server failed; the operator's log has details")


def _http_title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install(app: FastAPI) -> None:
    app.add_exception_handler(PmhubError, _pmhub_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
