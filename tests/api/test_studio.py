"""A user's studio loop: generate with and without an adapter, listen, rate, tag, favourite, prefer,
compare two sides blind, draw datasets from that feedback, and follow an adapter's lineage. The
generation worker's events are published by the test, with real audio in the object store, as the
worker publishes them."""
from __future__ import annotations

import hashlib

import asyncpg
import pytest

from events.base import AudioFile, ObjectRef
from events.catalogue import (
    AdapterSaved, GenerationCompleted, GenerationStarted, RunCompleted, SampleGenerated,
)
from events.generations import sample_id
from services.registry.progress import wait_until_projected
from tests.api.conftest import sine


class Studio:
    """What the worker and the trainer do, done by the test over the real bus."""

    def __init__(self, api, client, bus, db) -> None:
        self.api, self.client, self.bus, self.db = api, client, bus, db

    async def settle(self, sequences: list[int]) -> None:
        await wait_until_projected(self.db, max(sequences))

    async def adapter(self, dataset_id: str | None = None, name: str = "tuned") -> str:
        """An adapter the trainer saved, from a run on `dataset_id` (or a fresh one-clip dataset)."""
        if dataset_id is None:
            experiment = await self.api.supervised_experiment()
        else:
            experiment = await self.api.experiment(dataset_id, name=name)
        run = await self.api.run(experiment["id"])
        adapter_id = f"adapter-{run['id']}"
        weights = await self.bus.put_object(self.bus.adapters_bucket, f"{adapter_id}.zip", b"weights")
        await self.settle(await self.bus.publish_many([
            AdapterSaved(run_id=run["id"], adapter_id=adapter_id, experiment_id=experiment["id"], name=name,
                         adapter=weights, base_model="tiny", dataset_type=run["dataset_type"], lora_config={},
                         final_loss=0.5),
            RunCompleted(run_id=run["id"], attempt=1, final_loss=0.5, steps=1, seconds=1.0, adapter_id=adapter_id),
        ]))
        return adapter_id

    async def generate(self, generation_id: str, frequency: float = 440.0) -> list[bytes]:
        """The worker takes the request and publishes each sample with its audio stored."""
        generation = (await self.client.get(f"/api/generations/{generation_id}")).json()
        events = [GenerationStarted(generation_id=generation_id, attempt=1, worker_id="worker-1")]
        audios = []
        for index in range(generation["num_samples"]):
            audio = sine(seconds=0.5, sample_rate=32_000, frequency=frequency + 10 * index)
            ref = await self.bus.put_object(self.bus.samples_bucket, f"{sample_id(generation_id, index)}.wav", audio)
            events.append(SampleGenerated(
                generation_id=generation_id, sample_id=sample_id(generation_id, index), index=index,
                audio=AudioFile(**ref.model_dump(), filename=f"{index}.wav", format="WAV", duration_seconds=0.5,
                                sample_rate=32_000, channels=1),
                seed=generation["seed"], seconds_taken=0.25))
            audios.append(audio)
        events.append(GenerationCompleted(generation_id=generation_id, attempt=1, seconds_taken=0.5))
        await self.settle(await self.bus.publish_many(events))
        return audios

    async def request(self, **body) -> dict:
        response = await self.client.post("/api/generations", json={"prompt": "warm lofi piano", **body})
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
async def studio(api, client, bus, settings):
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    yield Studio(api, client, bus, pool)
    await pool.close()


async def test_generations_are_queued_then_listed_with_the_samples_their_worker_made(studio, client, bus):
    adapter_id = await studio.adapter()
    tuned = await studio.request(adapter_id=adapter_id, seed=7, num_samples=2, duration_seconds=4)
    base = await studio.request(prompt="dark ambient drone")
    assert (tuned["status"], tuned["adapter_id"], tuned["base_model"], tuned["samples"]) == ("queued", adapter_id, "tiny", [])
    assert (base["adapter_id"], base["base_model"], base["num_samples"]) == (None, "facebook/musicgen-small", 1)
    [requested] = [stored.event for stored in await bus.history("generation", tuned["id"])]
    assert requested.adapter.name == f"{adapter_id}.zip"  # the worker fetches the weights from the event alone

    audios = await studio.generate(tuned["id"])

    done = (await client.get(f"/api/generations/{tuned['id']}")).json()
    assert done["status"] == "completed" and done["attempt"] == 1
    assert [(s["index"], s["seed"], s["adapter_id"], s["prompt"]) for s in done["samples"]] == [
        (0, 7, adapter_id, "warm lofi piano"), (1, 7, adapter_id, "warm lofi piano")]
    assert [s["sha256"] for s in done["samples"]] == [hashlib.sha256(a).hexdigest() for a in audios]
    assert [g["id"] for g in (await client.get("/api/generations")).json()] == [base["id"], tuned["id"]]
    assert [s["id"] for s in (await client.get("/api/samples", params={"adapter_id": adapter_id})).json()] == [
        s["id"] for s in done["samples"]]
    assert (await client.get("/api/samples", params={"base_model": "facebook/musicgen-small"})).json() == []

    url = done["samples"][0]["audio_url"]
    whole = await client.get(url)
    assert (whole.status_code, whole.content, whole.headers["accept-ranges"]) == (200, audios[0], "bytes")
    part = await client.get(url, headers={"Range": "bytes=10-19"})
    assert (part.status_code, part.content, part.headers["content-range"]) == (206, audios[0][10:20], f"bytes 10-19/{len(audios[0])}")
    tail = await client.get(url, headers={"Range": "bytes=-4"})
    assert (tail.status_code, tail.content) == (206, audios[0][-4:])
    past = await client.get(url, headers={"Range": f"bytes={len(audios[0])}-"})
    assert (past.status_code, past.headers["content-range"]) == (416, f"bytes */{len(audios[0])}")


async def test_cancel_is_at_once_when_queued_asked_when_running_refused_when_finished(studio, client, bus):
    queued, running, finished = [await studio.request() for _ in range(3)]
    await studio.settle([await bus.publish(GenerationStarted(generation_id=running["id"], attempt=1, worker_id="w"))])
    await studio.generate(finished["id"])

    response = await client.post(f"/api/generations/{queued['id']}/cancel")
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    response = await client.post(f"/api/generations/{running['id']}/cancel")
    assert (response.status_code, response.json()["status"], response.json()["cancel_requested"]) == (202, "running", True)
    response = await client.post(f"/api/generations/{finished['id']}/cancel")
    assert (response.status_code, response.json()) == (409, {"detail": f"generation '{finished['id']}' is already completed"})
    response = await client.post(f"/api/generations/{queued['id']}/cancel")
    assert response.status_code == 409


async def test_ratings_tags_favourites_and_preferences_on_samples(studio, client, bus):
    generation = await studio.request(num_samples=2, prompt="Bright Synthwave")
    await studio.generate(generation["id"])
    first, second = sample_id(generation["id"], 0), sample_id(generation["id"], 1)

    for criterion, rating in (("overall", 2), ("melody", 4), ("overall", 5)):
        response = await client.post(f"/api/samples/{first}/ratings", json={"rating": rating, "criterion": criterion})
        assert response.status_code == 201, response.text
    for tag in ("warm", "retro", "warm"):
        assert (await client.post(f"/api/samples/{first}/tags", json={"tag": tag})).status_code == 201
    assert (await client.delete(f"/api/samples/{first}/tags/warm")).status_code == 200
    assert (await client.put(f"/api/samples/{second}/favorite")).json()["favorite"] is True

    sample = (await client.get(f"/api/samples/{first}")).json()
    assert (sample["ratings"], sample["tags"], sample["favorite"]) == ({"overall": 5, "melody": 4}, ["retro"], False)
    ratings = [stored.event.rating for stored in await bus.history("sample", first) if stored.envelope.type == "SampleRated"]
    assert ratings == [2, 4, 5]  # the history keeps every rating

    def ids(response) -> list[str]:
        return [s["id"] for s in response.json()]
    assert ids(await client.get("/api/samples", params={"min_rating": 5})) == [first]
    assert ids(await client.get("/api/samples", params={"tag": "retro"})) == [first]
    assert ids(await client.get("/api/samples", params={"favorite": True})) == [second]
    assert sorted(ids(await client.get("/api/samples", params={"q": "synthWAVE"}))) == sorted([first, second])
    assert ids(await client.get("/api/samples", params={"q": "jazz"})) == []
    assert (await client.delete(f"/api/samples/{second}/favorite")).json()["favorite"] is False

    response = await client.post("/api/preferences", json={"chosen_sample_id": second, "rejected_sample_id": first})
    assert response.status_code == 201, response.text
    assert (response.json()["chosen_sample_id"], response.json()["rejected_sample_id"]) == (second, first)
