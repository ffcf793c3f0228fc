"""What every request handler needs, built once by the app's lifespan (the composition root)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from events.bus import Bus
from services.settings import Settings


@dataclass(frozen=True)
class Context:
    settings: Settings
    bus: Bus
    pool: asyncpg.Pool


def get_context(request: Request) -> Context:
    """FastAPI dependency: the context the lifespan put on the app."""
    return request.app.state.context


ContextDep = Annotated[Context, Depends(get_context)]
