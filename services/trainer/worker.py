"""The trainer service: a work queue of run requests, shared by every trainer process.

All trainers bind one durable pull consumer (`trainer`) on `<root>.run.*.run_requested`
(services.workqueue: explicit acks, heartbeats, bounded redeliveries, one request per free slot).
A request is acked only once its run reached a final state, so a trainer that dies mid-run leaves
it unacked and another trainer resumes it from the run's last uploaded checkpoint after `ack_wait`.
Deliveries are unlimited: the trainer counts the failed attempts from the run's history and fails the
run at its attempt limit (a graceful hand-back does not count).
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from nats.aio.msg import Msg

from events.bus import Bus
from events.codec import NotAnEvent, decode
from events.catalogue import RunFailed, RunHandedBack, RunRequested
from events.subjects import parse_subject, subject_filter
from services.settings import Settings
from services.trainer.settings import DURABLE_NAME, TrainerSettings
from services.trainer.run import Delivery, Outcome, RunAttempt
from services.workqueue import WorkQueue, serve

log = logging.getLogger(__name__)

# On stop, how long running trainings get to reach a step boundary, checkpoint and upload it before
# they are killed (their requests are then redelivered after the ack wait, from an older checkpoint).
STOP_TIMEOUT = 300.0


def work_queue(bus: Bus, trainer: TrainerSettings) -> WorkQueue:
    return WorkQueue(
        durable_name=DURABLE_NAME,
        filter_subject=subject_filter(bus.subject_root, "run", event_name=RunRequested.event_name()),
        ack_wait=trainer.ack_wait,
        fetch_timeout=trainer.fetch_timeout,
    )


async def handle_request(bus: Bus, trainer: TrainerSettings, cache_root: Path, stop: asyncio.Event,
                         message: Msg) -> None:
    try:
        _, request = decode(message.data, message.subject)
    except NotAnEvent as error:  # no request at all (see NotAnEvent)
        log.warning("not a run request on %s, dropped: %s", message.subject, error)
        await message.term()
        return
    except ValueError as error:  # pydantic's ValidationError and UnknownEventType are ValueErrors
        # No delivery will read it any better: fail the run it names and drop the request.
        run_id = parse_subject(message.subject).aggregate_id
        log.error("run %s: unreadable run request: %s", run_id, error)
        await bus.publish(RunFailed(run_id=run_id, attempt=0, error=f"the run request could not be read: {error}"))
        await message.term()
        return
    delivery = Delivery(request=request, request_seq=message.metadata.sequence.stream,
                        attempt=message.metadata.num_delivered)
    # An attempt that raises is redelivered by the work queue after a delay (RunAttemptFailed says why).
    outcome = await RunAttempt(bus, trainer, cache_root, delivery, stop).handle()
    if outcome is Outcome.REQUEUE:
        log.info("run %s: handed back for another trainer to resume", request.run_id)
        await message.nak()
    else:
        await message.ack()


async def hand_back_request(bus: Bus, message: Msg) -> None:
    """A request fetched while stopping: said handed back before it goes back, so the delivery is
    not counted as a failed attempt."""
    run_id = parse_subject(message.subject).aggregate_id
    await bus.publish(RunHandedBack(run_id=run_id, attempt=message.metadata.num_delivered))
    await message.nak()


async def run_trainer(settings: Settings, stop: asyncio.Event, trainer: TrainerSettings | None = None) -> None:
    """Train run requests until `stop` is set; then stop running trainings at their next step
    (they checkpoint) and hand them back to the queue."""
    trainer = trainer or TrainerSettings.from_env()
    cache_root = trainer.cache_dir or settings.cache_dir
    bus = await settings.connect_bus()
    try:
        await bus.ensure()

        async def handle(message: Msg) -> None:
            await handle_request(bus, trainer, cache_root, stop, message)

        log.info("trainer %s: taking run requests (%d at once, cache %s)",
                 trainer.trainer_id, trainer.concurrency, cache_root)
        async def hand_back(message: Msg) -> None:
            await hand_back_request(bus, message)

        await serve(bus, work_queue(bus, trainer), handle, hand_back, stop, slots=trainer.concurrency,
                    stop_timeout=STOP_TIMEOUT)
    finally:
        await bus.close()
