"""A work queue on the stream: one durable pull consumer that every worker process of a kind binds
(all trainers bind `trainer`, all generation workers `generator`), so each request is in the hands
of one worker at a time.

- Explicit acks: the handler acks a request only once it reached a final state, so a worker that
  dies mid-request leaves it unacked and JetStream hands it to another worker after `ack_wait`.
- `in_progress` heartbeats every `ack_wait / 4` while a request is in a handler, since the work
  lasts far longer than any ack wait.
- Redeliveries are unlimited: a worker stopping gracefully hands its request back any number of
  times, so each service counts the failed attempts from the request's history and fails it itself
  (events.attempts).
- JetStream applies a durable consumer's config only when it is created, so it is compared at
  start and updated in place when `ack_wait` or `max_deliver` changed (an earlier version bounded
  deliveries; deleting the consumer would lose its state).
- Each slot fetches one request at a time, and only when it is free: a worker never holds a request
  it is not working on (one waiting in a local queue gets no heartbeats and is redelivered to a
  second worker while still queued here).
- A stopping worker lets its pending fetch run out rather than cancel it: the server may already be
  sending a request, which would otherwise be lost until the ack wait and then count as a failed
  delivery. A request that arrives while stopping is handed back (`hand_back`: said on the stream,
  then nak'ed), so the next worker does not count it as a failed attempt.

Written on nats-py over the process's one `Bus` connection rather than faststream's broker, which
opened a second connection beside it and whose worker pool fetched before a worker was free.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from events.bus import Bus

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 2.0  # the default of WorkQueue.fetch_timeout
RETRY_DELAY = 5.0  # after a handler's unexpected error, or a failed fetch, seconds before trying again

Handler = Callable[[Msg], Awaitable[None]]


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class WorkQueue:
    """The shared consumer: its name, the requests it delivers and how it redelivers them."""

    durable_name: str
    filter_subject: str
    ack_wait: float
    # Seconds a free slot's fetch waits for a request before asking again: how long an idle worker
    # takes to stop, since a stopping worker lets its fetch run out (see the module's docstring).
    fetch_timeout: float = FETCH_TIMEOUT

    @property
    def heartbeat_seconds(self) -> float:
        return self.ack_wait / 4

    def consumer_config(self) -> api.ConsumerConfig:
        return api.ConsumerConfig(
            durable_name=self.durable_name,
            filter_subject=self.filter_subject,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=-1,  # unlimited: see the module's docstring
            max_ack_pending=-1,
        )


async def ensure_consumer(bus: Bus, queue: WorkQueue) -> None:
    """Create the shared durable consumer, or update it if its ack wait or deliveries differ."""
    wanted = queue.consumer_config()
    try:
        current = (await bus.js.consumer_info(bus.stream, queue.durable_name)).config
    except NotFoundError:
        current = None
    if current is not None and (current.ack_wait, current.max_deliver) == (wanted.ack_wait, wanted.max_deliver):
        return
    if current is not None:
        log.info("%s consumer: ack_wait %s -> %s s, max_deliver %s -> %s", queue.durable_name,
                 current.ack_wait, wanted.ack_wait, current.max_deliver, wanted.max_deliver)
    await bus.js.add_consumer(bus.stream, wanted)  # creates, or updates the editable fields in place


@contextlib.asynccontextmanager
async def heartbeats(message: Msg, every: float) -> AsyncIterator[None]:
    """Tell JetStream the request is still being worked on, so it is not redelivered meanwhile."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await message.in_progress()
            except Exception as error:  # a missed beat is retried at the next one
                log.warning("heartbeat failed: %s", error)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def serve(bus: Bus, queue: WorkQueue, handle: Handler, hand_back: Handler, stop: asyncio.Event,
                slots: int = 1, stop_timeout: float = 60.0) -> None:
    """Hand requests to `handle` in `slots` parallel slots until `stop` is set. `handle` acks or
    naks its message; if it raises, the request is redelivered after `RETRY_DELAY`. A request
    fetched while stopping goes to `hand_back`, which says so on the stream and naks it. On stop,
    the running handlers get `stop_timeout` seconds to finish (they see `stop` too) before they are
    cancelled, leaving their requests to be redelivered after the ack wait."""
    await ensure_consumer(bus, queue)
    tasks = [asyncio.create_task(_slot(bus, queue, handle, hand_back, stop)) for _ in range(slots)]
    try:
        await stop.wait()
    finally:
        _, running = await asyncio.wait(tasks, timeout=stop_timeout)
        for task in running:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("%s slot failed: %r", queue.durable_name, result)


async def _slot(bus: Bus, queue: WorkQueue, handle: Handler, hand_back: Handler, stop: asyncio.Event) -> None:
    subscription = await bus.js.pull_subscribe_bind(queue.durable_name, bus.stream)
    try:
        while not stop.is_set():
            message = await _next_request(bus, queue, subscription, stop)
            if message is None:
                continue
            if stop.is_set():  # fetched while shutting down: leave it to another worker at once
                await hand_back(message)
                return
            try:
                async with heartbeats(message, queue.heartbeat_seconds):
                    await handle(message)
            except Exception:
                log.exception("%s: the request on %s failed in its handler; redelivered in %s s",
                              queue.durable_name, message.subject, RETRY_DELAY)
                with contextlib.suppress(Exception):
                    await message.nak(delay=RETRY_DELAY)
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()


async def _next_request(bus: Bus, queue: WorkQueue, subscription: JetStreamContext.PullSubscription,
                        stop: asyncio.Event) -> Msg | None:
    """One request, or None when none came within the fetch timeout or the fetch failed. Pending
    fetches are simply asked again: a server restart drops them, and the subscription itself is
    resubscribed by nats-py on reconnect."""
    try:
        return (await subscription.fetch(1, timeout=queue.fetch_timeout))[0]
    except nats.errors.TimeoutError:  # no request queued
        return None
    except Exception as error:  # the server is restarting, or lost the consumer
        log.warning("%s: fetching a request failed: %s", queue.durable_name, error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RETRY_DELAY)
        with contextlib.suppress(Exception):
            await ensure_consumer(bus, queue)
        return None
