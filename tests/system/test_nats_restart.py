"""A trainer keeps taking run requests after the nats-server restarts (a pull subscription can die
with the server: nats.py issue #504). No API or registry here: the test publishes what the API would."""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import replace

from nats.js.errors import NotFoundError

from events.base import AudioFile
from events.bus import Bus
from events.catalogue import ClipAdded, DatasetCreated, ExperimentCreated, RunRequested
from model.training.config import TrainingConfig
from services.trainer.settings import DURABLE_NAME, TrainerSettings
from services.trainer.worker import run_trainer


async def connect_when_up(url: str, namespace: str) -> Bus:
    for _ in range(50):
        try:
            return await Bus.connect(url, namespace)
        except Exception:  # not listening yet
            await asyncio.sleep(0.1)
    raise AssertionError("nats-server did not start")


async def request_run(bus: Bus, tone: bytes, config: dict) -> str:
    dataset_id, experiment_id, run_id = (str(uuid.uuid4()) for _ in range(3))
    ref = await bus.put_object(bus.clips_bucket, "take.wav", tone)
    audio = AudioFile(**ref.model_dump(), filename="take.wav", format="WAV", duration_seconds=1.0,
                      sample_rate=32_000, channels=1)
    for attempt in range(100):
        try:
            await bus.publish_many([
                DatasetCreated(dataset_id=dataset_id, name="d", kind="supervised"),
                ClipAdded(dataset_id=dataset_id, clip_id=str(uuid.uuid4()), prompt="calm piano", audio=audio),
                ExperimentCreated(experiment_id=experiment_id, name="e", dataset_id=dataset_id, config={}),
                RunRequested(run_id=run_id, experiment_id=experiment_id, dataset_id=dataset_id, name="r",
                             config=TrainingConfig(**config).model_dump(mode="json")),
            ])
            return run_id
        except Exception:  # still reconnecting after the restart
            await asyncio.sleep(0.2)
    raise AssertionError("the restarted nats-server never took a publish")


async def wait_for(bus: Bus, run_id: str, event_type: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not any(s.envelope.type == event_type for s in await bus.history("run", run_id)):
        assert time.monotonic() < deadline, f"no {event_type} for run {run_id} after {timeout} s"
        await asyncio.sleep(0.3)


async def until_fetching(bus: Bus) -> None:
    """Until the trainer's pull subscription waits on the server for a request."""
    for _ in range(300):
        with contextlib.suppress(NotFoundError):  # the trainer has not created it yet
            if (await bus.js.consumer_info(bus.stream, DURABLE_NAME)).num_waiting > 0:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the trainer never started fetching")


async def test_a_trainer_takes_run_requests_after_nats_restarts(settings, restartable_nats, tone, training_config):
    nats_server = restartable_nats
    settings = replace(settings, nats_url=nats_server.url)
    bus = await connect_when_up(nats_server.url, settings.namespace)
    await bus.ensure()
    stop = asyncio.Event()
    # A short fetch timeout: the idle trainer's stop waits out its fetch.
    trainer = asyncio.create_task(run_trainer(settings, stop, TrainerSettings(trainer_id="t", ack_wait=4.0,
                                                                              fetch_timeout=0.5)))
    try:
        await until_fetching(bus)

        nats_server.stop()
        await asyncio.sleep(2)  # the trainer's fetches fail meanwhile
        nats_server.start()
        run_id = await request_run(bus, tone(), training_config(max_steps=1))

        await wait_for(bus, run_id, "RunCompleted")
        assert not trainer.done()
    finally:
        stop.set()
        await asyncio.wait_for(trainer, timeout=60)
        await bus.close()
        nats_server.stop()
