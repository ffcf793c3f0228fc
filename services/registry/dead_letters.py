"""Dead letters: stored events the projector could not apply, parked instead of stopping it.

An event is parked when `decode` refuses it (an unknown type or version, a payload that fails
validation) or when the read models refuse what its handler writes (a NUL in a text, a foreign key
to nothing). The stream keeps the event itself; the table keeps its sequence, subject, type and
the error, so an operator sees what was skipped and can `replay` it once a handler is fixed.
"""
from __future__ import annotations

import logging
from datetime import datetime

import asyncpg
from pydantic import BaseModel

from events.bus import Bus
from events.codec import decode
from services.registry import handlers
from services.registry.checkpoint import lock_checkpoint, write_checkpoint

log = logging.getLogger(__name__)

# What a handler raises for an event the read models cannot hold: PostgreSQL refusing a value or a
# constraint, asyncpg refusing to encode a value (its DataError is a ValueError), or a handler
# meeting a payload without a field it reads. Lost connections are none of these: they abort the
# batch and the projector reads it again.
APPLY_ERRORS = (
    asyncpg.exceptions.DataError, asyncpg.exceptions.IntegrityConstraintViolationError, ValueError, KeyError,
    TypeError,
)


class DeadLetter(BaseModel):
    seq: int
    subject: str
    type: str
    error: str
    parked_at: datetime


class ReplayFailed(RuntimeError):
    pass


def _storable(text: str) -> str:
    # The error may quote the very text PostgreSQL refused.
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


async def park(conn: asyncpg.Connection, seq: int, subject: str, type: str, error: str) -> None:
    log.error("projector: parked event %d (%s on %s) as a dead letter: %s", seq, type, subject, error)
    await conn.execute(
        "INSERT INTO dead_letters (seq, subject, type, error) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (seq) DO UPDATE SET error = EXCLUDED.error, parked_at = now()",
        seq, _storable(subject), _storable(type), _storable(error),
    )


async def list_dead_letters(conn: asyncpg.Connection | asyncpg.Pool, after_seq: int = 0,
                            limit: int | None = None) -> list[DeadLetter]:
    """In stream order; `limit` of them after the stream sequence `after_seq`."""
    rows = await conn.fetch(
        "SELECT seq, subject, type, error, parked_at FROM dead_letters WHERE seq > $1 ORDER BY seq LIMIT $2",
        after_seq, limit,
    )
    return [DeadLetter(**dict(row)) for row in rows]


async def replay(conn: asyncpg.Connection, bus: Bus, seq: int) -> DeadLetter:
    """Apply the parked event at stream sequence `seq` with today's handlers and remove it from
    the table; raise `ReplayFailed` (leaving it parked) if it still cannot be applied."""
    async with conn.transaction():
        checkpoint = await lock_checkpoint(conn)
        row = await conn.fetchrow(
            "SELECT seq, subject, type, error, parked_at FROM dead_letters WHERE seq = $1 FOR UPDATE", seq)
        if row is None:
            raise ReplayFailed(f"no dead letter at sequence {seq}")
        message = await bus.js.get_msg(bus.stream, seq)
        try:
            envelope, event = decode(message.data or b"", message.subject)
            await handlers.apply(conn, envelope, event)
        except APPLY_ERRORS as error:  # decode's UndecodableEvent is a ValueError
            raise ReplayFailed(f"event {seq} still cannot be applied: {type(error).__name__}: {error}") from None
        await conn.execute("DELETE FROM dead_letters WHERE seq = $1", seq)
        await write_checkpoint(conn, checkpoint)  # unchanged, but written: the read models' version moves
        return DeadLetter(**dict(row))
