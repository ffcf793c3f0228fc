"""Folding a batch of stored events into the read models together with the projector checkpoint.

The checkpoint row (`projector_checkpoint`, name 'registry') holds the stream sequence of the last
event folded. It is read FOR UPDATE first, the batch's effects and the new sequence are written
after, all in the caller's transaction: effects and position commit together or not at all, an
event at or below the checkpoint is skipped, and whoever else folds (a second projector, a
rebuild) waits for the row instead of interleaving. An event that cannot be applied is parked in
`dead_letters` in that same transaction, and folding goes on.
"""
from __future__ import annotations

import asyncpg

from events.reader import StoredEvent, UnreadableEvent
from events.catalogue import LossReported
from services.registry import dead_letters, handlers
from services.registry.checkpoint import lock_checkpoint, write_checkpoint
from services.registry.dead_letters import APPLY_ERRORS


class PositionMoved(Exception):
    """The checkpoint is not where this projector left it: someone else (a rebuild) moved it."""

    def __init__(self, checkpoint: int) -> None:
        super().__init__(f"the projector checkpoint moved to {checkpoint}")
        self.checkpoint = checkpoint


async def apply_batch(conn: asyncpg.Connection, batch: list[StoredEvent | UnreadableEvent],
                      expected: int | None = None) -> int:
    """Fold the events of `batch` the checkpoint has not seen, in stream order, and advance it;
    park those that cannot be applied (see `dead_letters`) with the same commit.

    Must run inside a transaction. With `expected` (the checkpoint the caller last committed),
    raise `PositionMoved` if the checkpoint is elsewhere. Returns the checkpoint afterwards.
    """
    checkpoint = await lock_checkpoint(conn)
    if expected is not None and checkpoint != expected:
        raise PositionMoved(checkpoint)
    fresh = [stored for stored in batch if stored.seq > checkpoint]
    if not fresh:
        return checkpoint
    # The whole batch is tried under one savepoint first: a savepoint per event costs two round
    # trips each. Only a batch that holds an event the read models refuse is folded again, event
    # by event, each under its own savepoint, so that one bad event parks alone.
    readable = [stored for stored in fresh if isinstance(stored, StoredEvent)]
    try:
        async with conn.transaction():
            await _fold_in_bulk(conn, readable)
    except APPLY_ERRORS:
        await _fold_one_by_one(conn, fresh)
    else:
        for unreadable in fresh:
            if isinstance(unreadable, UnreadableEvent):
                await dead_letters.park(conn, unreadable.seq, unreadable.subject, unreadable.type, unreadable.error)
    checkpoint = fresh[-1].seq
    await write_checkpoint(conn, checkpoint)
    return checkpoint


async def _fold_in_bulk(conn: asyncpg.Connection, batch: list[StoredEvent]) -> None:
    reports: list = []  # consecutive LossReported events go in one statement
    for stored in batch:
        if isinstance(stored.event, LossReported):
            reports.append((stored.envelope, stored.event))
            continue
        if reports:
            await handlers.loss_reported(conn, reports)
            reports = []
        await handlers.apply(conn, stored.envelope, stored.event)
    if reports:
        await handlers.loss_reported(conn, reports)


async def _fold_one_by_one(conn: asyncpg.Connection, batch: list[StoredEvent | UnreadableEvent]) -> None:
    for stored in batch:
        if isinstance(stored, UnreadableEvent):
            await dead_letters.park(conn, stored.seq, stored.subject, stored.type, stored.error)
            continue
        try:
            async with conn.transaction():
                await handlers.apply(conn, stored.envelope, stored.event)
        except APPLY_ERRORS as error:
            await dead_letters.park(conn, stored.seq, stored.subject, stored.envelope.type,
                                    f"{type(error).__name__}: {error}")
