"""The trainer service: a work queue of run requests, shared by every trainer process.

Consumer design. All trainers bind one durable pull consumer (`trainer`) on
`<root>.run.*.run_requested` of the stream, so each request goes to exactly one of them at a time:
- explicit acks (faststream's `AckPolicy.MANUAL`): a request is acked only once its run reached a
  final state, so a trainer that dies mid-run leaves it unacked and JetStream hands it to another
  trainer after `ack_wait`, which resumes from the run's last uploaded checkpoint;
- `in_progress()` heartbeats every `ack_wait / 4` while a run is in hand, since training lasts far
  longer than any ack wait;
- `max_deliver = max_attempts + 1`: the extra delivery lets a trainer fail the run with that reason;
- the consumer's config is only applied by JetStream when it is created, so it is compared at start
  and updated in place when `ack_wait` or `max_deliver` changed (deleting it would lose its state).

Each unit of concurrency is its own faststream pull subscriber fetching one request at a time, and
only when it is free: a trainer never holds a request it is not working on (one waiting in a
local queue would get no heartbeats and be redelivered to a second trainer while still queued
here — which faststream's `max_workers` would do, since it fetches before a worker is free).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from faststream import AckPolicy
from faststream.security import BaseSecurity
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.js import api
from nats.js.errors import NotFoundError

from events.bus import Bus, tls_context
from events.codec import decode
from events.catalogue import RunFailed, RunRequested
from events.subjects import parse_subject, subject_filter
from services.settings import Settings
from services.trainer.config import DURABLE_NAME, TrainerConfig
from services.trainer.run import Delivery, Outcome, RunAttempt

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 5.0  # seconds a free slot's fetch waits for a request before asking again
RETRY_DELAY = 5.0  # after an unexpected error, seconds before the request is redelivered
# On stop, how long running trainings get to reach a step boundary, checkpoint and upload it before
# they are killed (their requests are then redelivered after the ack wait, from an older checkpoint).
STOP_TIMEOUT = 300.0


def consumer_config(bus: Bus, trainer: TrainerConfig) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=DURABLE_NAME,
        filter_subject=request_subject(bus),
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=trainer.ack_wait,
        max_deliver=trainer.max_deliver,
        max_ack_pending=-1,
    )


def request_subject(bus: Bus) -> str:
    return subject_filter(bus.subject_root, "run", event_name=RunRequested.event_name())


async def ensure_consumer(bus: Bus, trainer: TrainerConfig) -> None:
    """Create the shared durable consumer, or update it if its ack wait or deliveries differ."""
    wanted = consumer_config(bus, trainer)
    try:
        current = (await bus.js.consumer_info(bus.stream, DURABLE_NAME)).config
    except NotFoundError:
        current = None
    if current is not None and (current.ack_wait, current.max_deliver) == (wanted.ack_wait, wanted.max_deliver):
        return
    if current is not None:
        log.info("trainer consumer: ack_wait %s -> %s s, max_deliver %s -> %s",
                 current.ack_wait, wanted.ack_wait, current.max_deliver, wanted.max_deliver)
    await bus.js.add_consumer(bus.stream, wanted)  # creates, or updates the editable fields in place


@contextlib.asynccontextmanager
async def heartbeats(message: NatsMessage, every: float) -> AsyncIterator[None]:
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


async def handle_request(bus: Bus, trainer: TrainerConfig, cache_root: Path, stop: asyncio.Event,
                         message: NatsMessage) -> None:
    raw = message.raw_message
    try:
        _, request = decode(raw.data)
    except ValueError as error:  # pydantic's ValidationError and UnknownEventType are ValueErrors
        # No delivery will read it any better: fail the run it names and drop the request.
        run_id = parse_subject(raw.subject).aggregate_id
        log.error("run %s: unreadable run request: %s", run_id, error)
        await bus.publish(RunFailed(run_id=run_id, attempt=0, error=f"the run request could not be read: {error}"))
        await message.reject()
        return
    delivery = Delivery(request=request, request_seq=raw.metadata.sequence.stream,
                        attempt=raw.metadata.num_delivered)
    if stop.is_set():  # fetched while shutting down: leave it to another trainer at once
        await message.nack()
        return
    try:
        async with heartbeats(message, trainer.heartbeat_seconds):
            outcome = await RunAttempt(bus, trainer, cache_root, delivery, stop).handle()
    except Exception:
        log.exception("run %s: attempt %d failed in the trainer; retrying in %s s",
                      request.run_id, delivery.attempt, RETRY_DELAY)
        await message.nack(delay=RETRY_DELAY)
        return
    if outcome is Outcome.REQUEUE:
        log.info("run %s: handed back for another trainer to resume", request.run_id)
        await message.nack()
    else:
        await message.ack()


async def run_trainer(settings: Settings, stop: asyncio.Event, trainer: TrainerConfig | None = None) -> None:
    """Train run requests until `stop` is set; then stop running trainings at their next step
    (they checkpoint) and hand them back to the queue."""
    trainer = trainer or TrainerConfig.from_env()
    cache_root = trainer.cache_dir or settings.cache_dir
    bus = await Bus.connect(settings.nats_url, settings.namespace, settings.nats_creds_file, settings.nats_ca_file)
    try:
        await bus.ensure()
        await ensure_consumer(bus, trainer)
        tls = tls_context(settings.nats_ca_file)
        broker = NatsBroker(settings.nats_url, graceful_timeout=STOP_TIMEOUT, logger=None,
                            max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                            user_credentials=str(settings.nats_creds_file) if settings.nats_creds_file else None,
                            security=BaseSecurity(ssl_context=tls) if tls else None)

        async def handle(message: NatsMessage) -> None:
            await handle_request(bus, trainer, cache_root, stop, message)

        for _ in range(trainer.concurrency):
            broker.subscriber(
                request_subject(bus), stream=JStream(bus.stream, declare=False), durable=DURABLE_NAME,
                pull_sub=PullSub(batch_size=1, timeout=FETCH_TIMEOUT), ack_policy=AckPolicy.MANUAL,
            )(handle)
        await broker.start()
        log.info("trainer %s: taking run requests (%d at once, cache %s)",
                 trainer.trainer_id, trainer.concurrency, cache_root)
        try:
            await stop.wait()
        finally:
            await broker.stop()  # waits for the running handlers, which see `stop` and wind down
    finally:
        await bus.close()
