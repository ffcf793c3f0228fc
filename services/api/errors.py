"""The errors command and query functions raise, and how the app turns them into HTTP answers.

422 answers keep FastAPI's own shape (`{"detail": [{"loc", "msg", "type"}]}`) whether pydantic or a
command found the problem, so a client reads every validation error the same way.
"""
from __future__ import annotations

from typing import Sequence

import asyncpg

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from events.bus import EventTooLarge
from services.api.validation import renderable
from services.faults import TRANSIENT
from services.registry.progress import ProjectionTimeout

# What a client is told to wait before trying again while a dependency is away.
RETRY_AFTER_SECONDS = 5


class NotFound(Exception):
    """An id in the path or the body names nothing (404)."""

    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"{kind} '{id}' not found")


class QuotaExceeded(Exception):
    """Storing the request would pass a configured quota (413)."""


class Conflict(Exception):
    """The request is well formed but the current state forbids it (409)."""


def invalid(loc: Sequence[str | int], msg: str, type: str = "value_error") -> RequestValidationError:
    """A 422 naming the field (`loc`) and what is wrong with it (`msg`)."""
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": type}])


def invalid_from(error: ValidationError, prefix: Sequence[str]) -> RequestValidationError:
    """A pydantic error from a model validated inside a command, located under `prefix`."""
    return RequestValidationError(
        [
            {"loc": (*prefix, *item["loc"]), "msg": item["msg"], "type": item["type"], "input": item.get("input")}
            for item in error.errors(include_url=False, include_context=False)
        ]
    )


def install_error_handlers(app: FastAPI) -> None:
    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    async def conflict(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    async def not_projected(_: Request, exc: Exception) -> JSONResponse:
        # The event is stored on the stream and will be applied; only the read-your-write wait gave up.
        return unavailable(f"accepted, but not readable yet: {exc}; read it again shortly, or send the "
                           "request again with the same Idempotency-Key")

    async def dependency_away(_: Request, exc: Exception) -> JSONResponse:
        # A transient fault (services.faults): NATS or PostgreSQL is restarting, stopped or hung.
        return unavailable(f"a service Cadenza depends on is not answering ({type(exc).__name__}); try again "
                           "shortly (a command sent again with the same Idempotency-Key is not applied twice)")

    async def unprocessable(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler, but able to quote an input holding NaN or an unpaired surrogate.
        return JSONResponse({"detail": renderable(jsonable_encoder(exc.errors()))}, status_code=422)

    async def too_large(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    async def unstorable_id(request: Request, _: Exception) -> JSONResponse:
        # Commands refuse such text before it is stored, so only an id in a URL gets this far, and
        # no stored id holds a NUL: it names nothing.
        return JSONResponse({"detail": f"{request.url.path!r} not found: no stored id holds a NUL character"},
                            status_code=404)

    app.add_exception_handler(RequestValidationError, unprocessable)
    app.add_exception_handler(asyncpg.CharacterNotInRepertoireError, unstorable_id)
    app.add_exception_handler(EventTooLarge, too_large)
    app.add_exception_handler(QuotaExceeded, too_large)
    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(Conflict, conflict)
    for transient in TRANSIENT:
        app.add_exception_handler(transient, dependency_away)
    app.add_exception_handler(ProjectionTimeout, not_projected)


def unavailable(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
