"""The projector checkpoint: one row (`projector_checkpoint`, name 'registry') holding the stream
sequence of the last event folded into the read models.

Every transaction that changes the read models also writes this row: a fold moves it, a rebuild
resets and moves it, a dead letter's replay rewrites it unchanged. Each takes its lock first, so
they never interleave and never deadlock on each other.
"""
from __future__ import annotations

import asyncpg

CHECKPOINT = "registry"


async def read_checkpoint(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    value = await conn.fetchval("SELECT last_seq FROM projector_checkpoint WHERE name = $1", CHECKPOINT)
    return value or 0


async def lock_checkpoint(conn: asyncpg.Connection) -> int:
    """Lock the checkpoint row until the transaction ends and return the sequence it holds."""
    lock = "SELECT last_seq FROM projector_checkpoint WHERE name = $1 FOR UPDATE"
    checkpoint = await conn.fetchval(lock, CHECKPOINT)
    if checkpoint is None:  # the first fold into a fresh database
        await conn.execute(
            "INSERT INTO projector_checkpoint (name, last_seq) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING", CHECKPOINT
        )
        checkpoint = await conn.fetchval(lock, CHECKPOINT)
    return checkpoint


async def write_checkpoint(conn: asyncpg.Connection, checkpoint: int) -> None:
    await conn.execute("UPDATE projector_checkpoint SET last_seq = $2 WHERE name = $1", CHECKPOINT, checkpoint)


async def read_models_version(conn: asyncpg.Connection | asyncpg.Pool) -> tuple[int, int]:
    """A value that changes whenever the read models may have: the checkpoint and the id of the
    transaction that last wrote its row (its `xmin`), which a replay or a rebuild renews even
    where the checkpoint ends where it was."""
    row = await conn.fetchrow(
        "SELECT last_seq, xmin::text::bigint AS written_by FROM projector_checkpoint WHERE name = $1", CHECKPOINT)
    return (row["last_seq"], row["written_by"]) if row is not None else (0, 0)
