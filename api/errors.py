"""The app's exception handlers: every error is strict JSON ``{"detail": ...}``, except under
``/v2``, where the Open Inference Protocol's clients expect ``{"error": message}`` (tritonclient
cannot decode anything else, so a 401 read as a decoding failure).

Validation errors echo the client's input only through ``json_response.echo`` (short, finite),
so a refused NaN or a 16 MB list can never break or bloat the answer. A 400 only ever comes from
body parsing (FastAPI, Starlette's multipart parser): it is a 422, as the API documents.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException  # FastAPI's and Starlette's own (multipart)

from api.error_locations import json_loc
from api.field_suggestions import suggest
from api.json_response import StrictJSONResponse, echo
from worker.storage import ArtifactError

log = logging.getLogger("gradq.api")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(redis.RedisError, redis_unavailable)
    app.add_exception_handler(ArtifactError, artifact_unreadable)
    app.add_exception_handler(Exception, internal_error)


def _is_oip(request: Request) -> bool:
    path = request.url.path
    return path == "/v2" or path.startswith("/v2/")


def _answer(request: Request, detail: Any, status_code: int, headers=None) -> StrictJSONResponse:
    """``{"detail": detail}``, or under ``/v2`` the protocol's ``{"error": text}``."""
    if not _is_oip(request):
        return StrictJSONResponse({"detail": detail}, status_code=status_code, headers=headers)
    if isinstance(detail, list):  # validation errors: "loc: msg" each
        detail = "; ".join(
            f"{'.'.join(str(part) for part in error.get('loc', []))}: {error.get('msg', '')}"
            for error in detail
        )
    return StrictJSONResponse({"error": str(detail)}, status_code=status_code, headers=headers)


async def http_error(request: Request, exc: HTTPException):
    if exc.status_code == 400:  # a body Starlette or FastAPI could not parse
        return _answer(request, f"body: {exc.detail}", 422)
    return _answer(request, exc.detail, exc.status_code, exc.headers)


async def validation_error(request: Request, exc: RequestValidationError):
    errors = [_safe(error, exc.body, request.app) for error in exc.errors()]
    return _answer(request, errors, 422)


def _safe(error: dict[str, Any], body: Any, app: FastAPI) -> dict[str, Any]:
    """One pydantic/FastAPI error with its echoed input and context made short and finite, and
    its location a path in the client's JSON (``api.error_locations``); an unknown field's
    error names the field it most likely meant (``ctx.did_you_mean``, and in ``msg``)."""
    kind = str(error.get("type", "value_error"))
    loc = [part if isinstance(part, int | str) else str(part) for part in error["loc"]]
    safe = {"type": kind, "loc": json_loc(loc, body, kind), "msg": str(error.get("msg", ""))[:500]}
    if "input" in error:
        safe["input"] = echo(error["input"])
    if error.get("ctx"):
        safe["ctx"] = {str(key): _scalar(value) for key, value in error["ctx"].items()}
    if kind == "extra_forbidden" and loc and isinstance(loc[-1], str):
        if meant := suggest(loc[-1], app):
            safe["msg"] += f"; did you mean {meant!r}?"
            safe["ctx"] = safe.get("ctx", {}) | {"did_you_mean": meant}
    return safe


def _scalar(value: Any) -> Any:
    """A context value (a bound, a pattern, an exception) as short JSON."""
    return echo(value if isinstance(value, bool | int | float | str | None) else str(value))


async def redis_unavailable(request: Request, exc: redis.RedisError):
    log.warning("Redis error on %s: %s", request.url.path, exc)
    return _answer(request, f"redis: unavailable ({type(exc).__name__})", 503)


async def artifact_unreadable(request: Request, exc: ArtifactError):
    """Damaged or missing stored bytes: a server fault, said plainly (never wrong weights)."""
    log.error("artifact error on %s: %s", request.url.path, exc)
    return _answer(request, f"stored data unreadable: {exc}", 500)


async def internal_error(request: Request, exc: Exception):
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return _answer(request, "internal error (see the API log)", 500)
