"""The HTTP API's composition root: `create_app(settings)` wires the bus, the database pool and the
routers; `uvicorn` (or `cadenza api`) serves the result."""
from __future__ import annotations

import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import asyncpg
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from fastapi.staticfiles import StaticFiles

from services.api.answers import Answers
from services.api.auth import ApiToken
from services.api.context import Context
from services.api.errors import install_error_handlers
from services.api.limits import BodyLimit
from services.api.routers import (
    adapters, comparisons, datasets, dead_letters, experiments, feedback, generations, lineage, runs, samples,
)
from services.database import create_pool
from services.registry import migrate
from services.settings import Settings

WEB_UI = Path(__file__).parent / "static"


async def decode_json_columns(connection: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bus = await settings.connect_bus()
        try:
            await bus.ensure()
            pool = await create_pool(settings, init=decode_json_columns)
            try:
                await migrate(pool)
                app.state.context = Context(settings=settings, bus=bus, pool=pool, answers=Answers())
                yield
            finally:
                await pool.close()
        finally:
            await bus.close()

    # /docs and /redoc from Swagger UI's and ReDoc's own assets shipped in the package: no CDN, so
    # the documentation renders offline.
    app = FastAPIOffline(
        title="Cadenza",
        description="Fine-tune MusicGen with LoRA adapters: datasets, experiments, runs and adapters.",
        lifespan=lifespan,
    )
    # Bounds every request body while it is read, uploads included.
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    if settings.api_token:  # added last, so it runs first: before any body is read
        app.add_middleware(ApiToken, token=settings.api_token)
    install_error_handlers(app)
    for module in (feedback, datasets, experiments, runs, adapters, dead_letters, generations, samples, comparisons,
                   lineage):
        app.include_router(module.router)
    # Mounted last: it answers only the paths no route above (the API, /docs) has taken.
    app.mount("/", StaticFiles(directory=WEB_UI, html=True), name="web-ui")
    return app
