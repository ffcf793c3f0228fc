"""How a worker hears that the user cancelled what it is working on.

Only an event on a cancel subject is a cancel: on a server where users share the streams' account
(one not set up by Cadenza), anyone who may send a JetStream API request can have its answer stored
on, and sent to, any subject (the request's reply subject, which permissions do not check), but no
answer is an event envelope.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from nats.aio.msg import Msg
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from events.base import Envelope
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

    async def on_message(message: Msg) -> None:
        if _is_event(message.data):
            cancelled.set()

    async def look_in_the_stream() -> None:
        while not cancelled.is_set():
            await asyncio.sleep(LOOK_INTERVAL)
            with contextlib.suppress(*TRANSIENT):  # away still: the next look
                for subject in subjects:
                    if await _holds_event(bus, subject):
                        cancelled.set()

    subscriptions = [await bus.nc.subscribe(subject, cb=on_message) for subject in subjects]
    looking = asyncio.create_task(look_in_the_stream())
    try:
        yield
    finally:
        looking.cancel()
        for subscription in subscriptions:
            await subscription.unsubscribe()


async def _holds_event(bus: Bus, subject: str) -> bool:
    """Whether the stream holds an event on `subject` (one subject, no wildcards)."""
    seq = 1
    while True:
        try:
            message = await bus.js.get_msg(bus.stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return False
        if _is_event(message.data):
            return True
        seq = message.seq + 1


def _is_event(data: bytes) -> bool:
    """Whether `data` is an event envelope, of whatever type and version (a newer release's too)."""
    try:
        Envelope.model_validate_json(data)
    except ValidationError:
        return False
    return True
