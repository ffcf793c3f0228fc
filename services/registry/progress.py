"""Read-your-writes: wait until the projector has folded a given stream sequence.

Every API command publishes, then awaits this before answering. The projector sends
`pg_notify('projector_checkpoint', <seq>)` inside the transaction that commits the sequence, so a
listener hears it the moment the commit is visible; the checkpoint is also re-read every 100 ms in
case a notification is missed (e.g. the listening connection was busy being set up).
"""
from __future__ import annotations

import asyncio

import asyncpg

from services.registry.fold import NOTIFY_CHANNEL, read_checkpoint

POLL_EVERY = 0.1


class ProjectionTimeout(TimeoutError):
    pass


async def wait_until_projected(pool: asyncpg.Pool, seq: int, timeout: float = 10.0) -> None:
    """Return once the read models include stream sequence `seq`; raise `ProjectionTimeout` after
    `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with pool.acquire() as conn:
        advanced = asyncio.Event()

        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            if int(payload) >= seq:
                advanced.set()

        await conn.add_listener(NOTIFY_CHANNEL, on_notify)
        try:
            # listening first, reading second: a commit in between is seen by one or the other
            while (reached := await read_checkpoint(conn)) < seq:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise ProjectionTimeout(
                        f"the registry has folded up to sequence {reached}, not yet {seq}, after {timeout} s"
                    )
                try:
                    await asyncio.wait_for(advanced.wait(), min(remaining, POLL_EVERY))
                except asyncio.TimeoutError:
                    pass
        finally:
            await conn.remove_listener(NOTIFY_CHANNEL, on_notify)
