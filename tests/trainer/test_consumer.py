"""The trainers' shared durable consumer: its settings follow the trainer's configuration, a run
request no trainer can read fails its run instead of being redelivered forever, and one that
arrives while a trainer stops goes back without counting as a failed attempt."""
from __future__ import annotations

import asyncio

from events import runs
from events.attempts import failed_attempts
from events.bus import Bus
from events.catalogue import RunHandedBack, RunRequested
from events.codec import decode
from events.subjects import event_subject, subject_filter
from services.trainer.settings import DURABLE_NAME, TrainerSettings
from services.trainer.worker import run_trainer, work_queue
from services.workqueue import ensure_consumer


async def test_the_consumer_is_created_and_updated_in_place_when_the_trainer_config_changes(settings):
    bus = await Bus.connect(settings.nats_url, settings.namespace)
    try:
        await bus.ensure()
        # a consumer of an earlier version, which bounded deliveries
        await bus.js.add_consumer(bus.stream, _bounded(work_queue(bus, TrainerSettings(ack_wait=60))))
        created = (await bus.js.consumer_info(bus.stream, DURABLE_NAME)).config
        assert (created.ack_wait, created.max_deliver) == (60, 4)
        assert created.filter_subject == f"{settings.namespace}.run.*.run_requested"

        # JetStream ignores a changed config when a subscriber merely binds: the trainer updates it
        await ensure_consumer(bus, work_queue(bus, TrainerSettings(ack_wait=5, max_attempts=1)))

        updated = (await bus.js.consumer_info(bus.stream, DURABLE_NAME)).config
        # deliveries are unlimited: the trainer counts failed attempts from the run's history
        assert (updated.ack_wait, updated.max_deliver) == (5, -1)
    finally:
        await bus.close()


def _bounded(queue):
    config = queue.consumer_config()
    config.max_deliver = 4
    return config


async def test_an_unreadable_run_request_fails_its_run_and_is_not_redelivered_and_what_is_no_request_is_dropped(
        settings):
    # No projector or history reads here: they cannot decode the garbled message either.
    bus = await Bus.connect(settings.nats_url, settings.namespace)
    await bus.ensure()
    failures: asyncio.Queue = asyncio.Queue()

    async def on_failed(message) -> None:
        failures.put_nowait(decode(message.data, message.subject)[1])

    await bus.nc.subscribe(subject_filter(bus.subject_root, "run", event_name="run_failed"), cb=on_failed)
    # What any user can have stored there (a JetStream API answer sent to it): not a request at all,
    # so no run to fail; only dropped.
    await bus.js.publish(event_subject(bus.subject_root, "run", "queued", "run_requested"),
                         b'{"type": "io.nats.jetstream.api.v1.account_info_response"}', stream=bus.stream)
    await bus.js.publish(event_subject(bus.subject_root, "run", "garbled", "run_requested"),
                         b'{"type": "RunRequested", "version": 2, "payload": {}}', stream=bus.stream)
    stop = asyncio.Event()
    trainer = asyncio.create_task(run_trainer(settings, stop, TrainerSettings(trainer_id="t", ack_wait=2)))
    try:
        failed = await asyncio.wait_for(failures.get(), timeout=30)

        assert (failed.run_id, failed.attempt) == ("garbled", 0)
        assert failed.error.startswith("the run request could not be read")
        await asyncio.sleep(3)  # longer than the ack wait: a request left unacked would be redelivered
        info = await bus.js.consumer_info(bus.stream, DURABLE_NAME)
        assert (info.num_ack_pending, info.num_redelivered, info.num_pending) == (0, 0, 0)
        assert failures.empty()
    finally:
        stop.set()
        await trainer
        await bus.close()


async def test_a_request_that_arrives_while_a_trainer_stops_is_handed_back_not_counted_as_failed(settings):
    bus = await Bus.connect(settings.nats_url, settings.namespace)
    await bus.ensure()
    handed_back: asyncio.Queue = asyncio.Queue()

    async def on_handed_back(message) -> None:
        handed_back.put_nowait(decode(message.data, message.subject)[1])

    await bus.nc.subscribe(subject_filter(bus.subject_root, "run", "late", RunHandedBack.event_name()), cb=on_handed_back)
    stop = asyncio.Event()
    # A long fetch timeout: the idle trainer's fetch is surely still pending.
    trainer = asyncio.create_task(run_trainer(settings, stop, TrainerSettings(trainer_id="t", ack_wait=60,
                                                                              fetch_timeout=30.0)))
    try:
        while (await _waiting_fetches(bus)) == 0:  # the idle trainer is waiting for a request
            await asyncio.sleep(0.05)

        stop.set()
        await bus.publish(RunRequested(run_id="late", experiment_id="e", dataset_id="d", name="late", config={}))
        await asyncio.wait_for(trainer, timeout=30)

        handed = await asyncio.wait_for(handed_back.get(), timeout=10)
        assert handed.attempt == 1
        # back in the queue at once, not after the 60 s ack wait
        next_trainer = await bus.js.pull_subscribe_bind(DURABLE_NAME, bus.stream)
        redelivered = (await next_trainer.fetch(1, timeout=10))[0]
        assert redelivered.metadata.num_delivered == 2
        state = runs.fold(stored.event for stored in await bus.history("run", "late"))
        assert failed_attempts(redelivered.metadata.num_delivered, state.handed_back) == 0
        await redelivered.ack()
    finally:
        stop.set()
        await asyncio.gather(trainer, return_exceptions=True)
        await bus.close()


async def _waiting_fetches(bus: Bus) -> int:
    try:
        return (await bus.js.consumer_info(bus.stream, DURABLE_NAME)).num_waiting
    except Exception:  # not created yet
        return 0
