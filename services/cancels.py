"""How a worker hears that the user cancelled what it is working on."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from events.bus import Bus
from services.faults import TRANSIENT

LOOK_INTERVAL = 2.0  # seconds between looks in the stream for a cancel the subscription missed


class Flag(Protocol):
    def set(self) -> None: ...
    def is_set(self) -> bool: ...


@contextlib.asynccontextmanager
async def watching(bus: Bus, subjects: Sequence[str], cancelled: Flag) -> AsyncIterator[None]:
    """Set `cancelled` once a message is published on any of `subjects` (exact subjects) while the
    block runs. The subscription hears it at once; a message published while this connection is
    away (a NATS restart) never reaches a subscription, so the stream is also looked at now and then."""

    async def on_message(_message: object) -> None:
        cancelled.set()

    async def look_in_the_stream() -> None:
        while not cancelled.is_set():
            await asyncio.sleep(LOOK_INTERVAL)
            with contextlib.suppress(*TRANSIENT):  # away still: the next look
                for subject in subjects:
                    if await bus.holds(subject):
                        cancelled.set()

    subscriptions = [await bus.nc.subscribe(subject, cb=on_message) for subject in subjects]
    looking = asyncio.create_task(look_in_the_stream())
    try:
        yield
    finally:
        looking.cancel()
        for subscription in subscriptions:
            await subscription.unsubscribe()
