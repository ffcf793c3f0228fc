"""Live updates: a run's events as server-sent events, straight from the stream."""
from __future__ import annotations

from typing import AsyncIterator

import nats.errors
from nats.js.api import ConsumerConfig, DeliverPolicy

from events.base import Envelope
from events.codec import decode
from services.api import queries
from services.api.commands import FINISHED
from services.api.context import Context
from services.api.schemas import RunEvent

KEEP_ALIVE_SECONDS = 15.0
TERMINAL = ("RunCompleted", "RunFailed", "RunCancelled")


def server_sent_event(seq: int, envelope: Envelope) -> str:
    event = RunEvent(seq=seq, **envelope.model_dump(include={"type", "version", "occurred_at", "payload"}))
    return f"id: {seq}\nevent: {envelope.type}\ndata: {event.model_dump_json()}\n\n"


async def run_events(ctx: Context, run_id: str, after_seq: int | None) -> AsyncIterator[str]:
    """The run's events as they land (those after stream sequence `after_seq` first, when given:
    a reconnecting browser sends it as Last-Event-ID). Ends after the run's final event, or at once
    when the run is already finished and nothing is to be replayed."""
    config = (
        ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
        if after_seq is None
        else ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1)
    )
    subscription = await ctx.bus.js.subscribe(
        f"{ctx.bus.subject_root}.run.{run_id}.>", stream=ctx.bus.stream, ordered_consumer=True, config=config
    )
    try:
        if after_seq is None and (await queries.run(ctx.pool, run_id)).status in FINISHED:
            return
        while True:
            try:
                message = await subscription.next_msg(timeout=KEEP_ALIVE_SECONDS)
            except nats.errors.TimeoutError:
                # Also catches a final event that landed just before the subscription started.
                if (await queries.run(ctx.pool, run_id)).status in FINISHED:
                    return
                yield ": keep-alive\n\n"
                continue
            envelope, _ = decode(message.data)
            yield server_sent_event(message.metadata.sequence.stream, envelope)
            if envelope.type in TERMINAL:
                return
    finally:
        await subscription.unsubscribe()
