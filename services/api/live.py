"""Live updates: a run's events as server-sent events, straight from the stream."""
from __future__ import annotations

from typing import AsyncIterator

from events.bus import StoredEvent
from events.subjects import subject_filter
from services.api import queries
from services.api.commands import FINISHED
from services.api.context import Context
from services.api.schemas import RunEvent

KEEP_ALIVE_SECONDS = 15.0
TERMINAL = ("RunCompleted", "RunFailed", "RunCancelled")


def run_event(stored: StoredEvent) -> RunEvent:
    envelope = stored.envelope
    return RunEvent(
        seq=stored.seq,
        type=envelope.type,
        version=envelope.version,
        occurred_at=envelope.occurred_at,
        payload=envelope.payload,
    )


async def run_events(ctx: Context, run_id: str, after_seq: int | None) -> AsyncIterator[str]:
    """The run's events as they land, formatted as server-sent events (those after stream sequence
    `after_seq` first, when given: a reconnecting browser sends it as Last-Event-ID). Ends after the
    run's final event, or at once when the run is already finished and nothing is to be replayed."""
    start = after_seq + 1 if after_seq is not None else await ctx.bus.last_seq() + 1
    reader = await ctx.bus.reader(start, subject_filter(ctx.bus.subject_root, "run", run_id))
    try:
        if after_seq is None and (await queries.run(ctx.pool, run_id)).status in FINISHED:
            return
        while True:
            batch = await reader.next_batch(wait=KEEP_ALIVE_SECONDS)
            if not batch:
                # Also ends a stream whose final event landed just before the reader started.
                if (await queries.run(ctx.pool, run_id)).status in FINISHED:
                    return
                await reader.check_alive()
                yield ": keep-alive\n\n"
            for stored, _ in batch:
                yield f"id: {stored.seq}\nevent: {stored.envelope.type}\ndata: {run_event(stored).model_dump_json()}\n\n"
                if stored.envelope.type in TERMINAL:
                    return
    finally:
        await reader.close()
