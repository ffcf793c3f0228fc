"""Events of one training attempt, published in order and in batches.

Losses and log lines arrive many per second; publishing each one and awaiting its ack would put a
network round trip on the training's critical path. They are collected and published with
`publish_many` (pipelined acks) when `max_events` have piled up or `max_delay` seconds have passed,
and always before any other event of the run, so the stream keeps the order they happened in.

A publish that fails for a transient reason (NATS restarting or away) is retried with the same
events for up to `OUTAGE_TOLERANCE` seconds: an outage that short costs neither events nor the
attempt. Publishing them again is safe, since the stream drops duplicates.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from events.base import Event
from events.bus import Bus
from events.catalogue import LossReported, RunLogged
from services.faults import retry

OUTAGE_TOLERANCE = 120.0


class RunOutbox:
    def __init__(self, bus: Bus, run_id: str, attempt: int, max_events: int = 50, max_delay: float = 1.0) -> None:
        self._bus = bus
        self._run_id = run_id
        self._attempt = attempt
        self._max_events = max_events
        self._max_delay = max_delay
        self._losses: list[LossReported] = []
        self._log_lines: list[str] = []
        self._next_chunk = 0
        self._lock = asyncio.Lock()

    def add_loss(self, event: LossReported) -> None:
        self._losses.append(event)

    def add_log(self, line: str) -> None:
        self._log_lines.append(line)

    @property
    def full(self) -> bool:
        return len(self._losses) >= self._max_events or len(self._log_lines) >= self._max_events

    def _take(self) -> list[Event]:
        events: list[Event] = list(self._losses)
        self._losses.clear()
        for start in range(0, len(self._log_lines), self._max_events):
            lines = self._log_lines[start:start + self._max_events]
            events.append(RunLogged(run_id=self._run_id, attempt=self._attempt, chunk=self._next_chunk, lines=lines))
            self._next_chunk += 1
        self._log_lines.clear()
        return events

    async def flush(self) -> None:
        async with self._lock:
            events = self._take()
            if events:
                await self._publish(events)

    async def publish(self, event: Event) -> int:
        """Publish what is pending, then `event`."""
        async with self._lock:
            pending = self._take()
            return (await self._publish([*pending, event]))[-1]

    async def _publish(self, events: list[Event]) -> list[int]:
        return await retry(lambda: self._bus.publish_many(events), f"publishing events of run {self._run_id}",
                           give_up_after=OUTAGE_TOLERANCE)

    @contextlib.asynccontextmanager
    async def flushing(self) -> AsyncIterator["RunOutbox"]:
        """Flush every `max_delay` seconds (or sooner when full) while inside; flush on the way out."""
        stopping = asyncio.Event()

        async def flush_periodically() -> None:
            loop = asyncio.get_running_loop()
            while not stopping.is_set():
                deadline = loop.time() + self._max_delay
                while not stopping.is_set() and not self.full and loop.time() < deadline:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), self._max_delay / 10)
                await self.flush()

        # Stopped by a flag, never cancelled: a cancelled flush would drop the events it had taken.
        task = asyncio.create_task(flush_periodically())
        try:
            yield self
        finally:
            stopping.set()
            await task
