"""What every request handler needs: the parts the app's lifespan built once (the composition
root), and the request's own source of resource ids."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Annotated

import asyncpg
from fastapi import Depends, Header, Request

from events.bus import Bus
from services.api.answers import Answers
from services.settings import Settings

IDEMPOTENT_ID_NAMESPACE = uuid.UUID("9d4b8f5e-27c1-4f0a-8c3e-6a1d2b7e5f90")


class ResourceIds:
    """The ids a command gives what it creates: random, or, when the request carries an
    `Idempotency-Key`, derived from the key, the request's method and path and the id's place in
    the command. A retried command then makes the same ids, hence events with the same idempotency
    keys, and finds them stored instead of creating anything a second time."""

    def __init__(self, scope: str | None = None) -> None:
        self.scope = scope
        self._made = 0

    @property
    def keyed(self) -> bool:
        return self.scope is not None

    @property
    def request(self) -> str | None:
        """The keyed request's id, which the events it publishes carry (`Bus.request_message`)."""
        return None if self.scope is None else str(uuid.uuid5(IDEMPOTENT_ID_NAMESPACE, self.scope))

    def new(self) -> str:
        if self.scope is None:
            return str(uuid.uuid4())
        self._made += 1
        return str(uuid.uuid5(IDEMPOTENT_ID_NAMESPACE, f"{self.scope}\n{self._made}"))

    def drawn_from(self, source: str) -> str:
        """The id of what the command makes from `source` (e.g. "sample <id>"): derived from the
        key and `source` rather than a place in the command, so a retry that finds more sources
        gives the ones it found before the same ids."""
        if self.scope is None:
            return str(uuid.uuid4())
        return str(uuid.uuid5(IDEMPOTENT_ID_NAMESPACE, f"{self.scope}\nfrom {source}"))


@dataclass(frozen=True)
class Context:
    settings: Settings
    bus: Bus
    pool: asyncpg.Pool
    answers: Answers
    ids: ResourceIds = field(default_factory=ResourceIds)


IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=200,
    description="A command sent again with the same key (to the same method and path) answers as the "
                "first one did and is not applied twice: a POST answers with the resource the first one "
                "created; a removal, cancel or vote the first one applied answers as it did, not 404 or "
                "409. A vote under a key that cast another vote answers 422")]


async def get_context(request: Request, idempotency_key: IdempotencyKey = None) -> Context:
    """FastAPI dependency: the context the lifespan put on the app, with this request's ids.
    Async, as FastAPI runs a plain function on a worker thread: a hop per request."""
    scope = f"{request.method} {request.url.path} {idempotency_key}" if idempotency_key else None
    return replace(request.app.state.context, ids=ResourceIds(scope))


ContextDep = Annotated[Context, Depends(get_context)]
