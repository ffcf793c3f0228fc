"""The whole stack as a user meets it: the HTTP API (httpx over ASGI), the registry projector,
trainer workers and generation workers as tasks in the test's loop, all on real NATS and
PostgreSQL, training and generating with the tiny MusicGen (built once per session) through the
real model code on the CPU.

Tests that need every part together live here; each other folder tests one package. The browser
tests stay in tests/ui: they run the stack too, but in a server of their own for a browser, and
share that set-up (and the Chromium it needs) among themselves.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile

import services.cancels
import services.workqueue
from events import generations, runs
from events.bus import Bus
from events.reader import StoredEvent
from services.api.app import create_app
from services.generator.settings import GeneratorSettings
from services.generator.worker import run_generator
from services.registry.projector import run_projector
from services.settings import Settings
from services.trainer.settings import TrainerSettings
from services.trainer.worker import run_trainer

SAMPLE_RATE = 32_000
# Every test stops its trainers and generation workers, and an idle one stops once its pending fetch
# runs out (2 s in service).
FETCH_TIMEOUT = 0.5


def tone(frequency: float = 440.0, seconds: float = 1.0, format: str = "WAV") -> bytes:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), SAMPLE_RATE, format=format)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def short_worker_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter waits for the workers in the tests' loop: a failed fetch or handler is retried after
    5 s in service, and a cancel missed while cut off is found in the stream within 2 s. (An idle
    worker's stop waits out its pending fetch: `FETCH_TIMEOUT` below.) What each wait is for is
    still tested here; how long it is, is not."""
    monkeypatch.setattr(services.workqueue, "RETRY_DELAY", 1.0)
    monkeypatch.setattr(services.cancels, "LOOK_INTERVAL", 0.5)


@pytest.fixture
def training_config(tiny_model: Path):
    """`training_config(**overrides) -> dict`: a few steps of the tiny model over-fitting one clip,
    where the loss visibly goes down."""

    def config(**overrides: object) -> dict:
        # One clip is one step an epoch: with the most epochs there are, max_steps sets the length.
        return {
            "base_model": str(tiny_model), "device": "cpu", "precision": "fp32", "max_steps": 6, "num_epochs": 1000, "batch_size": 1,
            "learning_rate": 1e-2, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "checkpoint_every": 2,
            **overrides,
        }

    return config


def trainer_settings(settings: Settings, name: str, **overrides: object) -> TrainerSettings:
    # A short ack wait so a dead trainer's run is redelivered within seconds (heartbeats every 1 s).
    return TrainerSettings(**{"trainer_id": name, "cache_dir": settings.cache_dir, "ack_wait": 4.0,
                              "fetch_timeout": FETCH_TIMEOUT, **overrides})


@dataclass
class Trainer:
    name: str
    task: asyncio.Task
    stop: asyncio.Event

    async def shut_down(self, timeout: float = 60) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout)


class Cadenza:
    """The running system and the steps a user takes with it."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient, bus: Bus, projector: asyncio.Task) -> None:
        self.settings = settings
        self.client = client
        self.bus = bus
        self.projector = projector  # the registry's: a test may check it outlived a fault
        self.trainers: list[Trainer] = []

    def start_trainer(self, name: str = "trainer-1", nats_url: str | None = None, **overrides: object) -> Trainer:
        """A trainer in the test's loop; `nats_url` is another way to the same server (a proxy)."""
        stop = asyncio.Event()
        own_settings = trainer_settings(self.settings, name, **overrides)
        settings = replace(self.settings, nats_url=nats_url) if nats_url else self.settings
        trainer = Trainer(name, asyncio.create_task(run_trainer(settings, stop, own_settings)), stop)
        self.trainers.append(trainer)
        return trainer

    async def post(self, path: str, expected: int = 201, **kwargs: object) -> dict:
        response = await self.client.post(path, **kwargs)
        assert response.status_code == expected, response.text
        return response.json()

    async def get(self, path: str) -> object:
        response = await self.client.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    async def supervised_experiment(self, config: dict, clips: int = 1, name: str = "lofi") -> dict:
        dataset = await self.post("/api/datasets", json={"name": f"{name} clips", "kind": "supervised"})
        for number in range(clips):
            await self.post(f"/api/datasets/{dataset['id']}/clips", data={"prompt": "calm lofi piano"},
                            files={"file": (f"take-{number}.wav", tone(220.0 * (number + 1)))})
        return await self.post("/api/experiments", json={"name": name, "dataset_id": dataset["id"], "config": config})

    async def preference_experiment(self, config: dict, name: str = "synthwave") -> dict:
        dataset = await self.post("/api/datasets", json={"name": f"{name} pairs", "kind": "preference"})
        await self.post(f"/api/datasets/{dataset['id']}/pairs", data={"prompt": "upbeat synthwave"}, files={
            "chosen": ("bright.flac", tone(440.0, format="FLAC")),
            "rejected": ("dull.ogg", tone(110.0, format="OGG")),
        })
        return await self.post("/api/experiments", json={"name": name, "dataset_id": dataset["id"], "config": config})

    async def request_run(self, experiment: dict, **body: object) -> dict:
        return await self.post(f"/api/experiments/{experiment['id']}/runs", json=body)

    async def wait_for_run(self, run_id: str, statuses: Collection[str] = runs.FINISHED, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = await self.get(f"/api/runs/{run_id}")
            if run["status"] in statuses:
                return run
            assert time.monotonic() < deadline, f"run {run_id} still {run['status']} after {timeout} s: {run}"
            await asyncio.sleep(0.2)

    async def wait_for_event(self, run_id: str, event_type: str, timeout: float = 120) -> StoredEvent:
        deadline = time.monotonic() + timeout
        while True:
            for stored in await self.bus.history("run", run_id):
                if stored.envelope.type == event_type:
                    return stored
            assert time.monotonic() < deadline, f"no {event_type} for run {run_id} after {timeout} s"
            await asyncio.sleep(0.2)

    async def history_types(self, run_id: str) -> list[str]:
        return [stored.envelope.type for stored in await self.bus.history("run", run_id)]


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Cadenza]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        stop_projector = asyncio.Event()
        projector = asyncio.create_task(run_projector(settings, stop_projector))
        bus = await Bus.connect(settings.nats_url, settings.namespace)
        system = None
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cadenza",
                                         timeout=30) as client:
                system = Cadenza(settings, client, bus, projector)
                yield system
        finally:
            for trainer in system.trainers if system else []:
                await trainer.shut_down()
            stop_projector.set()
            await asyncio.wait_for(projector, timeout=10)
            await bus.close()


@pytest.fixture
async def cadenza(settings: Settings) -> AsyncIterator[Cadenza]:
    async with running(settings) as system:
        yield system


@pytest.fixture
async def cadenza_on_restartable_postgres(fault_settings: Settings) -> AsyncIterator[Cadenza]:
    """The stack with its database on `restartable_postgres`, for a test to stop and start."""
    async with running(fault_settings) as system:
        yield system


@pytest.fixture
async def cadenza_on_restartable_nats(settings: Settings, restartable_nats) -> AsyncIterator[Cadenza]:
    """The stack on `restartable_nats`, for a test to stop, hang and start (publishes wait for their
    ack as briefly as that fixture says)."""
    async with running(replace(settings, nats_url=restartable_nats.url)) as system:
        yield system


@pytest.fixture(name="tone")
def tone_fixture():
    """`tone(frequency=440.0, seconds=1.0, format="WAV") -> bytes`: a sine at the tiny model's rate."""
    return tone


PROMPT = "warm lofi piano"


@dataclass
class Worker:
    name: str
    task: asyncio.Task
    stop: asyncio.Event

    async def shut_down(self, timeout: float = 60) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout)


def generator_settings(cadenza: Cadenza, name: str, **overrides: object) -> GeneratorSettings:
    # A short ack wait so a dead worker's request is redelivered within seconds (heartbeats every 1 s).
    return GeneratorSettings(**{"worker_id": name, "cache_dir": cadenza.settings.cache_dir / name, "device": "cpu",
                              "precision": "fp32", "ack_wait": 4.0, "fetch_timeout": FETCH_TIMEOUT, **overrides})


class Studio:
    """The running system with generation workers, and the steps a user takes with it."""

    def __init__(self, cadenza: Cadenza, tiny_model: Path) -> None:
        self.cadenza = cadenza
        self.tiny_model = str(tiny_model)
        self.workers: list[Worker] = []

    def start_worker(self, name: str = "worker-1", **overrides: object) -> Worker:
        stop = asyncio.Event()
        generator = generator_settings(self.cadenza, name, **overrides)
        worker = Worker(name, asyncio.create_task(run_generator(self.cadenza.settings, stop, generator)), stop)
        self.workers.append(worker)
        return worker

    async def train_adapter(self, training: dict) -> dict:
        """An adapter trained by a trainer on one clip; the trainer is shut down afterwards."""
        trainer = self.cadenza.start_trainer("trainer")
        experiment = await self.cadenza.supervised_experiment(training)
        run = await self.cadenza.wait_for_run((await self.cadenza.request_run(experiment))["id"])
        assert run["status"] == "completed", run
        await trainer.shut_down()
        self.cadenza.trainers.remove(trainer)
        return await self.cadenza.get(f"/api/adapters/{run['adapter_id']}")

    async def request(self, expected: int = 201, **body: object) -> dict:
        """POST /api/generations with tiny, quick defaults (the tiny model unless an adapter names one)."""
        defaults = {"prompt": PROMPT, "duration_seconds": 0.5, "seed": 11, "num_samples": 2}
        if body.get("adapter_id") is None:
            defaults["base_model"] = self.tiny_model
        return await self.cadenza.post("/api/generations", expected=expected, json={**defaults, **body})

    async def wait_for_generation(self, generation_id: str, statuses=generations.FINISHED, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            generation = await self.cadenza.get(f"/api/generations/{generation_id}")
            if generation["status"] in statuses:
                return generation
            assert time.monotonic() < deadline, f"generation still {generation['status']} after {timeout} s"
            await asyncio.sleep(0.2)

    async def wait_for_event(self, generation_id: str, event_type: str, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while True:
            for stored in await self.cadenza.bus.history("generation", generation_id):
                if stored.envelope.type == event_type:
                    return stored
            assert time.monotonic() < deadline, f"no {event_type} for generation {generation_id} after {timeout} s"
            await asyncio.sleep(0.2)

    async def history(self, generation_id: str) -> list:
        return await self.cadenza.bus.history("generation", generation_id)

    async def audio(self, sample_id: str) -> bytes:
        response = await self.cadenza.client.get(f"/api/samples/{sample_id}/audio")
        assert response.status_code == 200, response.text
        return response.content


@pytest.fixture
async def studio(cadenza: Cadenza, tiny_model: Path) -> AsyncIterator[Studio]:
    studio = Studio(cadenza, tiny_model)
    try:
        yield studio
    finally:
        for worker in studio.workers:
            await worker.shut_down()
