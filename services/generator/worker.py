"""The generation worker: a work queue of generation requests, shared by every worker process.

All workers bind one durable pull consumer (`generator`) on `<root>.generation.*.generation_requested`
(services.workqueue: explicit acks, heartbeats, unlimited redeliveries, one request at a time). A
request is acked once its generation reached a final state, so one whose worker died is generated
again by another worker after `ack_wait`, and one whose worker stopped is handed back at once; its
samples keep their ids, so each is stored once.
"""
from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg

from events.bus import Bus
from events.catalogue import AdapterSaved, GenerationFailed, GenerationHandedBack, GenerationRequested
from events.codec import NotAnEvent, decode
from events.subjects import parse_subject, subject_filter
from services.generator.settings import DURABLE_NAME, GeneratorSettings
from services.generator.generation import GenerationAttempt, Outcome
from services.generator.models import AdapterFolders, BaseModels, warm
from services.server_folders import ServerFolders
from services.settings import Settings
from services.workqueue import WorkQueue, serve

log = logging.getLogger(__name__)

# On stop, a running generation is interrupted at its next decoding step and handed back; this is
# how long that (and storing samples already made) may take before the handler is cancelled.
STOP_TIMEOUT = 30.0


def work_queue(bus: Bus, generator: GeneratorSettings) -> WorkQueue:
    return WorkQueue(
        durable_name=DURABLE_NAME,
        filter_subject=subject_filter(bus.subject_root, "generation", event_name=GenerationRequested.event_name()),
        ack_wait=generator.ack_wait,
        fetch_timeout=generator.fetch_timeout,
    )


async def handle_request(bus: Bus, generator: GeneratorSettings, models: BaseModels, adapters: AdapterFolders,
                         server_folders: ServerFolders, stop: asyncio.Event, message: Msg) -> None:
    try:
        _, request = decode(message.data, message.subject)
    except NotAnEvent as error:  # no request at all (see NotAnEvent)
        log.warning("not a generation request on %s, dropped: %s", message.subject, error)
        await message.term()
        return
    except ValueError as error:  # pydantic's ValidationError and UnknownEventType are ValueErrors
        # No delivery will read it any better: fail the generation it names and drop the request.
        generation_id = parse_subject(message.subject).aggregate_id
        log.error("generation %s: unreadable request: %s", generation_id, error)
        await bus.publish(GenerationFailed(generation_id=generation_id, attempt=0,
                                           error=f"the generation request could not be read: {error}"))
        await message.term()
        return
    attempt = GenerationAttempt(bus, generator, models, adapters, server_folders, request,
                                message.metadata.num_delivered, stop)
    # An attempt that raises is redelivered by the work queue after a delay.
    if await attempt.handle() is Outcome.REQUEUE:
        log.info("generation %s: handed back for another worker", request.generation_id)
        await message.nak()
    else:
        await message.ack()


async def hand_back_request(bus: Bus, message: Msg) -> None:
    """A request fetched while stopping: said handed back before it goes back, so the delivery is
    not counted as a failed attempt."""
    generation_id = parse_subject(message.subject).aggregate_id
    await bus.publish(GenerationHandedBack(generation_id=generation_id, attempt=message.metadata.num_delivered))
    await message.nak()


async def warm_new_adapters(bus: Bus, models: BaseModels, adapters: AdapterFolders) -> None:
    """Load each adapter the trainers save as it is announced, so its first generation does not wait
    for it. A plain subscription is enough: an announcement missed while disconnected only means
    that adapter is loaded by its first request instead."""
    pending: set[asyncio.Task] = set()

    async def warm_announced(event: AdapterSaved) -> None:
        try:
            await warm(models, adapters, event.base_model, event.adapter_id, event.adapter)
            log.info("adapter %s warmed on %s", event.adapter_id, event.base_model)
        except Exception as error:  # only an optimisation: its first request loads it, or fails with the reason
            log.warning("adapter %s not warmed: %s", event.adapter_id, error)

    async def on_saved(message: Msg) -> None:
        try:
            _, event = decode(message.data, message.subject)
        except ValueError as error:
            log.warning("unreadable AdapterSaved on %s: %s", message.subject, error)
            return
        task = asyncio.create_task(warm_announced(event))
        pending.add(task)
        task.add_done_callback(pending.discard)

    subject = subject_filter(bus.subject_root, "run", event_name=AdapterSaved.event_name())
    subscription = await bus.nc.subscribe(subject, cb=on_saved)
    try:
        await asyncio.Event().wait()  # until cancelled
    finally:
        await subscription.unsubscribe()
        for task in pending:
            task.cancel()


async def run_generator(settings: Settings, stop: asyncio.Event, generator: GeneratorSettings | None = None) -> None:
    """Generate requested samples until `stop` is set; a generation running then is handed back.

    Base models are loaded in this process: its commands run it in an empty working directory
    (services.supervisor.in_empty_folder), so that a hub id is never loaded from a folder beside it."""
    generator = generator or GeneratorSettings.from_env()
    cache_root = generator.cache_dir or settings.cache_dir
    bus = await settings.connect_bus()
    models = BaseModels(generator)
    adapters = AdapterFolders(bus, cache_root)
    server_folders = ServerFolders(cache_root)
    try:
        await bus.ensure()
        warming = asyncio.create_task(warm_new_adapters(bus, models, adapters))

        async def handle(message: Msg) -> None:
            await handle_request(bus, generator, models, adapters, server_folders, stop, message)

        async def hand_back(message: Msg) -> None:
            await hand_back_request(bus, message)

        log.info("generation worker %s: taking generation requests (device %s, cache %s)",
                 generator.worker_id, generator.device, cache_root)
        try:
            await serve(bus, work_queue(bus, generator), handle, hand_back, stop, stop_timeout=STOP_TIMEOUT)
        finally:
            warming.cancel()
    finally:
        await bus.close()
