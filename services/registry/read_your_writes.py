"""Read-your-writes: wait until the projector has folded a given stream sequence.

Every API command publishes, then awaits this before answering. The checkpoint is polled through
the pool, each read holding a connection only for its own query, at intervals that grow from a few
milliseconds (most commands are folded within them) to `POLL_CEILING`: waiters never hold a
connection between reads, so many writes waiting for a stopped registry do not starve the reads.
"""
from __future__ import annotations

import asyncio

import asyncpg

from services.registry.checkpoint import read_checkpoint

FIRST_POLL = 0.002
POLL_CEILING = 0.1
PROJECTION_TIMEOUT = 10.0


class ProjectionTimeout(TimeoutError):
    pass


async def wait_until_projected(pool: asyncpg.Pool, seq: int, timeout: float = PROJECTION_TIMEOUT) -> None:
    """Return once the read models include stream sequence `seq`; raise `ProjectionTimeout` after
    `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    interval = FIRST_POLL
    while (reached := await read_checkpoint(pool)) < seq:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise ProjectionTimeout(
                f"the registry has folded up to sequence {reached}, not yet {seq}, after {timeout} s"
            )
        await asyncio.sleep(min(interval, remaining))
        interval = min(interval * 2, POLL_CEILING)
