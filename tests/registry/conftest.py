"""The registry against real servers: a bus to publish with, the database the projector folds into,
the projector itself running in the test's loop, and a digest of every read model."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from events.base import Envelope, Event
from events.bus import Bus
from events.codec import encode
from services.registry.migrate import migrate
from services.registry.projector import run_projector
from services.registry.rebuild import READ_MODELS
from services.settings import Settings


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    await migrate(pool)
    yield pool
    await pool.close()


@pytest.fixture
async def projector(settings: Settings, bus: Bus, db: asyncpg.Pool) -> AsyncIterator[asyncio.Task]:
    """The projector, folding in the background for the whole test."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_projector(settings, stop))
    yield task
    stop.set()
    await asyncio.wait_for(task, timeout=15)


Digest = dict[str, tuple[int, str]]


@pytest.fixture
def digest(db: asyncpg.Pool) -> Callable[[], Awaitable[Digest]]:
    async def read() -> Digest:
        """Per read model (and the checkpoint): its row count and the md5 of all its rows in order."""
        result = {}
        for table in (*READ_MODELS, "projector_checkpoint"):
            result[table] = tuple(await db.fetchrow(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"))
        return result

    return read


@pytest.fixture
def store_again(bus: Bus) -> Callable[[Event], Awaitable[int]]:
    async def publish(event: Event) -> int:
        """Store `event` a second time, as a retry arriving after the duplicate window would."""
        ack = await bus.js.publish(event.subject(bus.subject_root), encode(Envelope.wrap(event)), stream=bus.stream)
        return ack.seq

    return publish


@pytest.fixture
def run_row(db: asyncpg.Pool) -> Callable[[str], Awaitable[asyncpg.Record]]:
    async def fetch(run_id: str) -> asyncpg.Record:
        return await db.fetchrow("SELECT * FROM runs WHERE id = $1", run_id)

    return fetch
