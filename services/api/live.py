"""A run's events as the API shows them: each with the run's state once it happened (the run's
fold up to there), as a list (the audit view) or live as server-sent events."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from pydantic import TypeAdapter

from events import runs
from events.reader import StoredEvent
from events.subjects import subject_filter
from services.api import queries
from services.api.context import Context
from services.api.schemas import RunEvent

KEEP_ALIVE_SECONDS = 15.0
RUN_EVENTS = TypeAdapter(list[RunEvent])


def run_event(stored: StoredEvent, state: runs.RunState) -> RunEvent:
    envelope = stored.envelope
    return RunEvent(
        seq=stored.seq,
        type=envelope.type,
        version=envelope.version,
        occurred_at=envelope.occurred_at,
        payload=envelope.payload,
        run=state,
    )


async def run_history(ctx: Context, run_id: str, after_seq: int, limit: int) -> list[RunEvent]:
    """The run's first `limit` events after stream sequence `after_seq`. The run's state is folded
    from its first event, so reading stops at the page's end but never starts later."""
    history = []
    state = runs.RunState()
    subject = subject_filter(ctx.bus.subject_root, "run", run_id)
    async with aclosing(ctx.bus.events(subject)) as events:
        async for stored in events:
            state = runs.evolve(state, stored.event)
            if stored.seq > after_seq:
                history.append(run_event(stored, state))
                if len(history) == limit:
                    break
    return history


class HistoryPage(bytes):
    """A page of a run's history as JSON, kept with the `seq` the next page starts after (None on
    the last page): a kept answer names its next page as rightly as a fresh one."""

    next_after_seq: int | None

    def __new__(cls, body: bytes, next_after_seq: int | None) -> HistoryPage:
        page = super().__new__(cls, body)
        page.next_after_seq = next_after_seq
        return page


async def run_history_json(ctx: Context, run_id: str, after_seq: int, limit: int) -> HistoryPage:
    """`run_history` of a run the read models hold (else `NotFound`), as JSON with where its next
    page starts; kept in `ctx.answers` until the stream grows. A kept answer's run was in the read models, and a run
    is never removed from them."""

    async def build() -> HistoryPage:
        await queries.require_run(ctx.pool, run_id)
        # One event more than the page holds: whether another page follows.
        events = await run_history(ctx, run_id, after_seq, limit + 1)
        return HistoryPage(RUN_EVENTS.dump_json(events[:limit]), events[limit - 1].seq if len(events) > limit else None)

    # Read before the history: a history read past this end is only fresher than need be.
    stream_end = await ctx.bus.last_seq()
    return await ctx.answers.get_or_build(("events", run_id, after_seq, limit), stream_end, build)


async def run_events(ctx: Context, run_id: str, after_seq: int | None) -> AsyncIterator[str]:
    """The run's events as they land, formatted as server-sent events (those after stream sequence
    `after_seq` first, when given: a reconnecting browser sends it as Last-Event-ID). Ends after the
    run's final event, or at once when the run is already finished and nothing is to be replayed.

    The run's history is read from its start, so that each event is sent with the state it leads to;
    only the events after `after_seq` (or, without it, after the stream's current end) are sent."""
    send_from = after_seq + 1 if after_seq is not None else await ctx.bus.last_seq() + 1
    reader = await ctx.bus.reader(1, subject_filter(ctx.bus.subject_root, "run", run_id))
    state = runs.RunState()
    try:
        while True:
            batch = await reader.next_batch(wait=KEEP_ALIVE_SECONDS)
            if not batch:
                await reader.check_alive()
                yield ": keep-alive\n\n"
            for stored, pending_after in batch:
                state = runs.evolve(state, stored.event)
                if stored.seq >= send_from:
                    event = run_event(stored, state)
                    yield f"id: {stored.seq}\nevent: {stored.envelope.type}\ndata: {event.model_dump_json()}\n\n"
                if state.finished and (stored.seq >= send_from or pending_after == 0):
                    return
    finally:
        await reader.close()
