"""Cadenza as a user meets it, with real training: the HTTP API (httpx over ASGI), the registry
projector and trainer workers as tasks in the test's loop, all on real NATS and PostgreSQL, training
the tiny MusicGen (built once per session) through the real model CLI."""
from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile

from events.bus import Bus, StoredEvent
from services.api.app import create_app
from events.runs import FINISHED
from services.registry.projector import run_projector
from services.settings import Settings
from services.trainer.settings import TrainerSettings
from services.trainer.worker import run_trainer

SAMPLE_RATE = 32_000


def tone(frequency: float = 440.0, seconds: float = 1.0, format: str = "WAV") -> bytes:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), SAMPLE_RATE, format=format)
    return buffer.getvalue()


@pytest.fixture
def training_config(tiny_model: Path):
    """`training_config(**overrides) -> dict`: a few steps of the tiny model over-fitting one clip,
    where the loss visibly goes down."""

    def config(**overrides: object) -> dict:
        return {
            "base_model": str(tiny_model), "device": "cpu", "precision": "fp32", "max_steps": 6, "num_epochs": 100, "batch_size": 1,
            "learning_rate": 1e-2, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "checkpoint_every": 2,
            **overrides,
        }

    return config


def trainer_settings(settings: Settings, name: str, **overrides: object) -> TrainerSettings:
    # A short ack wait so a dead trainer's run is redelivered within seconds (heartbeats every 1 s).
    return TrainerSettings(**{"trainer_id": name, "cache_dir": settings.cache_dir, "ack_wait": 4.0, **overrides})


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

    def __init__(self, settings: Settings, client: httpx.AsyncClient, bus: Bus) -> None:
        self.settings = settings
        self.client = client
        self.bus = bus
        self.trainers: list[Trainer] = []

    def start_trainer(self, name: str = "trainer-1", **overrides: object) -> Trainer:
        stop = asyncio.Event()
        own_settings = trainer_settings(self.settings, name, **overrides)
        trainer = Trainer(name, asyncio.create_task(run_trainer(self.settings, stop, own_settings)), stop)
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

    async def wait_for_run(self, run_id: str, statuses: Collection[str] = FINISHED, timeout: float = 180) -> dict:
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


@pytest.fixture
async def cadenza(settings: Settings) -> AsyncIterator[Cadenza]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        stop_projector = asyncio.Event()
        projector = asyncio.create_task(run_projector(settings, stop_projector))
        bus = await Bus.connect(settings.nats_url, settings.namespace)
        system = None
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cadenza",
                                         timeout=30) as client:
                system = Cadenza(settings, client, bus)
                yield system
        finally:
            for trainer in system.trainers if system else []:
                await trainer.shut_down()
            stop_projector.set()
            await asyncio.wait_for(projector, timeout=10)
            await bus.close()


@pytest.fixture(name="tone")
def tone_fixture():
    """`tone(frequency=440.0, seconds=1.0, format="WAV") -> bytes`: a sine at the tiny model's rate."""
    return tone
