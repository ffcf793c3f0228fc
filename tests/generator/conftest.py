"""Cadenza with generation workers: the API, the registry projector, trainers (tests/trainer's
`cadenza`) and generation workers as tasks in the test's loop, on real NATS and PostgreSQL,
generating with the tiny MusicGen in fp32 on the CPU."""
from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from events.generations import FINISHED
from services.generator.settings import GeneratorSettings
from services.generator.worker import run_generator
from tests.trainer.conftest import Cadenza, cadenza, tone_fixture, training_config  # noqa: F401 (fixtures)

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
                              "precision": "fp32", "ack_wait": 4.0, **overrides})


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

    async def wait_for_generation(self, generation_id: str, statuses=FINISHED, timeout: float = 120) -> dict:
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


def decoded(audio: bytes) -> tuple[np.ndarray, int]:
    samples, rate = soundfile.read(io.BytesIO(audio), dtype="float32")
    return samples, rate


@pytest.fixture
async def studio(cadenza: Cadenza, tiny_model: Path) -> AsyncIterator[Studio]:
    studio = Studio(cadenza, tiny_model)
    try:
        yield studio
    finally:
        for worker in studio.workers:
            await worker.shut_down()
