"""The API as a client sees it: the app (with its lifespan) behind httpx, the registry projector
running in the same loop, and views of what is stored to prove what a request did or did not do."""
from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest
import soundfile

from events.bus import Bus
from services.api.app import create_app
from services.registry.projector import run_projector
from services.settings import Settings

READ_MODELS = ("datasets", "clips", "preference_pairs", "experiments", "runs", "adapters")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        stop = asyncio.Event()
        projector = asyncio.create_task(run_projector(settings, stop))
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://cadenza") as client:
                yield client
        finally:
            stop.set()
            await asyncio.wait_for(projector, timeout=10)


@pytest.fixture
async def observer_bus(settings: Settings, client: httpx.AsyncClient) -> AsyncIterator[Bus]:
    """A second connection beside the API's, for the test to look at the stream and the object store.
    Unlike the root `bus` it declares nothing: the API (started with `client`) does."""
    bus = await Bus.connect(settings.nats_url, settings.namespace)
    yield bus
    await bus.close()


@pytest.fixture
async def db(settings: Settings, client: httpx.AsyncClient) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(settings.database_url)
    yield connection
    await connection.close()


@dataclass(frozen=True)
class Stored:
    """Everything a command could have written: stream messages, clip objects, read-model rows."""

    messages: int
    clip_objects: int
    tables: dict[str, list[Any]]


@pytest.fixture
def stored(observer_bus: Bus, db: asyncpg.Connection):
    async def snapshot() -> Stored:
        stream = await observer_bus.js.stream_info(observer_bus.stream)
        clips = await observer_bus.js.stream_info(f"OBJ_{observer_bus.clips_bucket}")
        tables = {table: [tuple(row) for row in await db.fetch(f"SELECT * FROM {table} ORDER BY id")]
                  for table in READ_MODELS}
        return Stored(messages=stream.state.messages, clip_objects=clips.state.messages, tables=tables)

    return snapshot


Refusal = Callable[[str, Awaitable[httpx.Response], int, list[str] | None, str], Awaitable[None]]


@pytest.fixture
def refused_unchanged(stored) -> Refusal:
    async def check(case: str, request: Awaitable[httpx.Response], status: int, loc: list[str] | None,
                    message: str) -> None:
        """`request` is answered `status` with `message` (for a 422, on the field at `loc`), and
        stores nothing: no event, no audio object, no read-model row."""
        before = await stored()
        response = await request
        assert response.status_code == status, (case, response.text)
        detail = response.json()["detail"]
        if loc is None:
            assert message in detail, case
        else:
            assert [(error["loc"], message in error["msg"]) for error in detail] == [(loc, True)], (case, detail)
        assert await stored() == before, case

    return check


def sine(format: str = "WAV", seconds: float = 1.0, sample_rate: int = 16_000, channels: int = 1,
         frequency: float = 440.0) -> bytes:
    """A short tone encoded as `format` (any soundfile writes: WAV, FLAC, OGG, MP3)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.repeat(tone[:, None], channels, axis=1), sample_rate, format=format)
    return buffer.getvalue()


@pytest.fixture
def tone():
    """`tone(format="WAV", seconds=1.0, sample_rate=16000, channels=1, frequency=440.0) -> bytes`"""
    return sine


class Api:
    """The steps every test takes, as a client would take them."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def dataset(self, kind: str = "supervised", name: str = "lofi") -> dict:
        response = await self.client.post("/api/datasets", json={"name": name, "kind": kind})
        assert response.status_code == 201, response.text
        return response.json()

    async def upload_clip(self, dataset_id: str, audio: bytes | None = None, prompt: str = "calm lofi piano",
                          filename: str = "tone.wav") -> httpx.Response:
        return await self.client.post(
            f"/api/datasets/{dataset_id}/clips",
            data={"prompt": prompt},
            files={"file": (filename, sine() if audio is None else audio)},
        )

    async def upload_pair(self, dataset_id: str, chosen: bytes | None = None, rejected: bytes | None = None,
                          prompt: str = "upbeat synthwave") -> httpx.Response:
        return await self.client.post(
            f"/api/datasets/{dataset_id}/pairs",
            data={"prompt": prompt},
            files={
                "chosen": ("chosen.flac", sine("FLAC", frequency=440) if chosen is None else chosen),
                "rejected": ("rejected.ogg", sine("OGG", frequency=220) if rejected is None else rejected),
            },
        )

    async def experiment(self, dataset_id: str, config: dict | None = None, name: str = "first try") -> dict:
        response = await self.client.post(
            "/api/experiments", json={"name": name, "dataset_id": dataset_id, "config": config or {}}
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def supervised_experiment(self, config: dict | None = None) -> dict:
        """An experiment on a supervised dataset holding one clip."""
        dataset = await self.dataset()
        assert (await self.upload_clip(dataset["id"])).status_code == 201
        return await self.experiment(dataset["id"], config)

    async def run(self, experiment_id: str, body: dict | None = None) -> dict:
        response = await self.client.post(f"/api/experiments/{experiment_id}/runs", json=body or {})
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)
