"""The registry projector: folds the stream into the PostgreSQL read models, batch by batch.

Where it reads from: the checkpoint in PostgreSQL is the projector's only position. It opens an
ephemeral, ack-less pull consumer at checkpoint + 1 and, for each batch it fetches (up to 4,000
events), folds the events and the new checkpoint in one transaction. It keeps no durable consumer
because a durable consumer's ack floor would be a second copy of the position, committed apart
from the read models: after a crash between commit and ack it lags the database, and `rebuild`
would have to reset it too. With the database as the one position, a crash, a nats-server restart
that loses the consumer, or a rebuild that moves the checkpoint all end the same way: the reader
is dropped and opened again at checkpoint + 1.
"""
from __future__ import annotations

import asyncio
import logging

import asyncpg

from events.bus import Bus
from events.reader import StoredEvent, UnreadableEvent
from services.database import create_pool
from services.faults import TRANSIENT, Backoff
from services.registry.checkpoint import read_checkpoint
from services.registry.fold import PositionMoved, apply_batch
from services.registry.migrate import migrate
from services.settings import Settings

log = logging.getLogger(__name__)

# Each transaction costs a few round trips, a commit and a summary refresh up to its top level
# whatever its size: while catching up, batches this large make those a few percent of the fold.
BATCH = 4_000
IDLE_WAIT = 1.0  # seconds a fetch waits for new events before the reader is checked


class StreamBehindReadModels(RuntimeError):
    pass


async def run_projector(settings: Settings, stop: asyncio.Event) -> None:
    """Fold the stream into the read models until `stop` is set.

    Transient faults (NATS or PostgreSQL restarting, stopped or hung: see services.faults) never
    end it: the reader and the pool are dropped, and both are opened again after a backoff, from
    the checkpoint. An event that cannot be applied is parked as a dead letter (see fold.py);
    anything else (a bug, a schema the code does not expect) stops the projector loudly rather
    than skip events.
    """
    bus = await settings.connect_bus()
    backoff = Backoff()
    try:
        await bus.ensure()
        while not stop.is_set():
            try:
                await _project(bus, settings, stop, backoff)
            except TRANSIENT as error:
                log.warning("projector: %s: %s; reading again from the checkpoint", type(error).__name__, error)
                await backoff.wait(stop)
    finally:
        await bus.close()


async def _project(bus: Bus, settings: Settings, stop: asyncio.Event, backoff: Backoff) -> None:
    pool = await create_pool(settings, min_size=1, max_size=2)
    try:
        await migrate(pool)
        while not stop.is_set():
            await _follow(bus, pool, stop, backoff)
    finally:
        # Not pool.close(): against a hung server a graceful close would hang too.
        pool.terminate()


async def _follow(bus: Bus, pool: asyncpg.Pool, stop: asyncio.Event, backoff: Backoff) -> None:
    """Fold from the checkpoint on until stopped, or until the checkpoint moves under us.

    The next batch is fetched (and decoded) while the current one is being committed, so NATS and
    PostgreSQL work at the same time. A stop ends the wait for new events at once; a batch being
    folded is committed first.
    """
    position = await read_checkpoint(pool)
    if position > (end := await bus.last_seq()):
        raise StreamBehindReadModels(
            f"the read models have folded up to sequence {position} but stream {bus.stream} ends at {end}: "
            "the stream was replaced; run `cadenza rebuild` to fold it from sequence 1"
        )
    reader = await bus.reader(start_seq=position + 1)
    stopping = asyncio.create_task(stop.wait())
    fetching = asyncio.create_task(reader.next_messages(BATCH, wait=IDLE_WAIT))
    try:
        while True:
            await asyncio.wait((fetching, stopping), return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                return
            batch = fetching.result()
            fetching = asyncio.create_task(reader.next_messages(BATCH, wait=IDLE_WAIT))
            if not batch:
                await reader.check_alive()
                continue
            try:
                position = await _fold(pool, batch, position)
                backoff.reset()
            except PositionMoved as moved:
                log.info("projector: %s; reading again from there", moved)
                return
    finally:
        fetching.cancel()
        stopping.cancel()
        await asyncio.gather(fetching, stopping, return_exceptions=True)
        await reader.close()


async def _fold(pool: asyncpg.Pool, batch: list[StoredEvent | UnreadableEvent], position: int) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await apply_batch(conn, batch, expected=position)

