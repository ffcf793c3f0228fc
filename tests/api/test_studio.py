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
from services.registry.read_your_writes import wait_until_projected
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
async def studio(api, client, observer_bus, settings):
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    yield Studio(api, client, observer_bus, pool)
    await pool.close()


async def test_generations_are_queued_then_listed_with_the_samples_their_worker_made(studio, client, observer_bus):
    adapter_id = await studio.adapter()
    tuned = await studio.request(adapter_id=adapter_id, seed=7, num_samples=2, duration_seconds=4)
    base = await studio.request(prompt="dark ambient drone")
    assert (tuned["status"], tuned["adapter_id"], tuned["base_model"], tuned["samples"]) == ("queued", adapter_id, "tiny", [])
    assert (base["adapter_id"], base["base_model"], base["num_samples"]) == (None, "facebook/musicgen-small", 1)
    [requested] = [stored.event for stored in await observer_bus.history("generation", tuned["id"])]
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
    # both lists come in pages: `after` the last one read, `limit` at a time
    first_page = (await client.get("/api/generations", params={"limit": 1})).json()
    assert [g["id"] for g in first_page] == [base["id"]]
    assert [g["id"] for g in (await client.get("/api/generations", params={"after": base["id"]})).json()] == [tuned["id"]]
    [first_sample] = (await client.get("/api/samples", params={"limit": 1})).json()
    assert first_sample["id"] == done["samples"][0]["id"]
    rest = (await client.get("/api/samples", params={"after": first_sample["id"], "limit": 5})).json()
    assert [s["id"] for s in rest] == [done["samples"][1]["id"]]
    assert (await client.get("/api/samples", params={"limit": 0})).status_code == 422

    url = done["samples"][0]["audio_url"]
    whole = await client.get(url)
    assert (whole.status_code, whole.content, whole.headers["accept-ranges"]) == (200, audios[0], "bytes")
    part = await client.get(url, headers={"Range": "bytes=10-19"})
    assert (part.status_code, part.content, part.headers["content-range"]) == (206, audios[0][10:20], f"bytes 10-19/{len(audios[0])}")
    tail = await client.get(url, headers={"Range": "bytes=-4"})
    assert (tail.status_code, tail.content) == (206, audios[0][-4:])
    past = await client.get(url, headers={"Range": f"bytes={len(audios[0])}-"})
    assert (past.status_code, past.headers["content-range"]) == (416, f"bytes */{len(audios[0])}")
    # the stored bytes are taken as the media type says, never sniffed
    assert {response.headers["x-content-type-options"] for response in (whole, part, tail, past)} == {"nosniff"}


async def test_cancel_is_at_once_when_queued_asked_when_running_refused_when_finished(studio, client, observer_bus):
    queued, running, finished = [await studio.request() for _ in range(3)]
    await studio.settle([await observer_bus.publish(GenerationStarted(generation_id=running["id"], attempt=1, worker_id="w"))])
    await studio.generate(finished["id"])

    response = await client.post(f"/api/generations/{queued['id']}/cancel")
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    response = await client.post(f"/api/generations/{running['id']}/cancel")
    assert (response.status_code, response.json()["status"], response.json()["cancel_requested"]) == (202, "running", True)
    response = await client.post(f"/api/generations/{finished['id']}/cancel")
    assert (response.status_code, response.json()) == (409, {"detail": f"generation '{finished['id']}' is already completed"})
    response = await client.post(f"/api/generations/{queued['id']}/cancel")
    assert response.status_code == 409


async def test_ratings_tags_favourites_and_preferences_on_samples(studio, client, observer_bus):
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
    ratings = [stored.event.rating for stored in await observer_bus.history("sample", first) if stored.envelope.type == "SampleRated"]
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


async def compare(studio, client, adapter_id: str, prompts: list[str], samples_per_prompt: int = 2) -> dict:
    response = await client.post("/api/comparisons", json={
        "name": "tuned vs base", "a": {"adapter_id": adapter_id}, "b": {"adapter_id": None},
        "prompts": prompts, "samples_per_prompt": samples_per_prompt, "seed": 40, "base_model": "tiny"})
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_comparison_is_voted_blind_and_its_results_are_the_hand_computed_ones(studio, client, observer_bus):
    adapter_id = await studio.adapter()
    comparison = await compare(studio, client, adapter_id, ["calm piano", "fast drums"])
    assert (comparison["status"], comparison["pairs_total"], comparison["pairs_ready"]) == ("generating", 4, 0)
    requests = {(g["side"], g["prompt_index"]): g["generation_id"] for g in comparison["generations"]}
    for (side, prompt_index), generation_id in requests.items():
        generation = (await client.get(f"/api/generations/{generation_id}")).json()
        assert (generation["seed"], generation["comparison_id"]) == (40 + prompt_index, comparison["id"])
        assert generation["adapter_id"] == (adapter_id if side == "a" else None)
    assert (await client.get(f"/api/comparisons/{comparison['id']}/next")).status_code == 204

    for generation_id in requests.values():
        await studio.generate(generation_id)

    [created] = [s.event for s in await observer_bus.history("comparison", comparison["id"])]
    first_side = {pair.pair_id: pair.first for pair in created.pairs}
    a_samples = {sample_id(requests[("a", p.prompt_index)], p.sample_index): p.pair_id for p in created.pairs}
    # The user prefers side a's sample in three pairs and finds the fourth equal.
    wanted = ["a", "a", "a", "tie"]
    for want in wanted:
        pair = (await client.get(f"/api/comparisons/{comparison['id']}/next")).json()
        shown_a_first = pair["first_sample_id"] in a_samples
        assert shown_a_first == (first_side[pair["pair_id"]] == "a")  # shown in the recorded order
        choice = "equal" if want == "tie" else ("first" if shown_a_first else "second")
        response = await client.post(f"/api/comparisons/{comparison['id']}/votes",
                                      json={"pair_id": pair["pair_id"], "choice": choice})
        assert response.status_code == 201, response.text
        again = await client.post(f"/api/comparisons/{comparison['id']}/votes",
                                  json={"pair_id": pair["pair_id"], "choice": "first"})
        assert again.status_code == 409 and "already voted" in again.json()["detail"]
    assert (await client.get(f"/api/comparisons/{comparison['id']}/next")).status_code == 204
    done = (await client.get(f"/api/comparisons/{comparison['id']}")).json()
    assert (done["status"], done["pairs_ready"], done["pairs_voted"]) == ("done", 4, 4)

    results = (await client.get(f"/api/comparisons/{comparison['id']}/results")).json()
    # 3 a-wins, 0 b-wins, 1 tie: rate 1; sign test 2 / 2^3 = 0.25; Wilson for 3 of 3 = [0.438503, 1]
    assert {key: results[key] for key in ("votes", "a_wins", "b_wins", "ties", "a_win_rate", "p_value")} == {
        "votes": 4, "a_wins": 3, "b_wins": 0, "ties": 1, "a_win_rate": 1.0, "p_value": 0.25}
    assert results["a_win_rate_ci"] == [pytest.approx(0.438503, abs=1e-6), 1.0]

    # the list shows each comparison as its own page does, this one done, a newer one generating
    newer = await compare(studio, client, adapter_id, ["slow strings"])
    listed = (await client.get("/api/comparisons")).json()
    assert [item["id"] for item in listed] == [newer["id"], comparison["id"]]
    assert listed == [(await client.get(f"/api/comparisons/{item['id']}")).json() for item in listed]
    assert [item["status"] for item in listed] == ["generating", "done"]


async def test_datasets_drawn_from_feedback_hold_what_their_filter_selected_and_train_the_next_adapter(
        studio, client, observer_bus, api):
    adapter_id = await studio.adapter()
    liked = await studio.request(adapter_id=adapter_id, num_samples=3, prompt="warm lofi piano")
    other = await studio.request(num_samples=1, prompt="cold techno")
    await studio.generate(liked["id"])
    await studio.generate(other["id"])
    s0, s1, s2 = (sample_id(liked["id"], i) for i in range(3))
    b0 = sample_id(other["id"], 0)
    for sample, rating in ((s0, 5), (s1, 4), (s2, 2), (b0, 5)):
        await client.post(f"/api/samples/{sample}/ratings", json={"rating": rating})
    await client.post(f"/api/samples/{s1}/tags", json={"tag": "keeper"})

    async def preview(kind: str, **filter) -> int:
        response = await client.post("/api/datasets/preview", json={"kind": kind, "filter": filter})
        assert response.status_code == 200, response.text
        return response.json()["count"]
    assert await preview("supervised", min_rating=4) == 3
    assert await preview("supervised", min_rating=4, adapter_id=adapter_id) == 2
    assert await preview("supervised", max_rating=3) == 1
    assert await preview("supervised", tags=["keeper"]) == 1
    assert await preview("supervised", q="LOFI") == 3
    assert await preview("supervised", until="2000-01-01T00:00:00Z") == 0

    response = await client.post("/api/datasets", json={
        "name": "liked lofi", "kind": "supervised", "from_feedback": {"adapter_id": adapter_id, "min_rating": 4}})
    assert response.status_code == 201, response.text
    dataset = response.json()
    await client.post(f"/api/samples/{s2}/ratings", json={"rating": 5})  # later feedback changes nothing
    detail = (await client.get(f"/api/datasets/{dataset['id']}")).json()
    samples = {s: (await client.get(f"/api/samples/{s}")).json() for s in (s0, s1)}
    assert [(c["prompt"], c["sha256"], c["bucket"]) for c in detail["clips"]] == [
        (samples[s]["prompt"], samples[s]["sha256"], observer_bus.samples_bucket) for s in (s0, s1)]
    assert (await client.get(detail["clips"][0]["audio_url"])).content == (await client.get(samples[s0]["audio_url"])).content
    history = [s.event for s in await observer_bus.history("dataset", dataset["id"])]
    assert history[1].filter.min_rating == 4 and [c.sample_id for c in history[1].clips] == [s0, s1]

    # A free preference and a comparison's votes become a preference dataset; ties are left out.
    await client.post("/api/preferences", json={"chosen_sample_id": s0, "rejected_sample_id": b0})
    comparison = await compare(studio, client, adapter_id, ["duel"], samples_per_prompt=2)
    for generation in comparison["generations"]:
        await studio.generate(generation["generation_id"])
    for choice in ("first", "equal"):
        pair = (await client.get(f"/api/comparisons/{comparison['id']}/next")).json()
        await client.post(f"/api/comparisons/{comparison['id']}/votes", json={"pair_id": pair["pair_id"], "choice": choice})
        if choice == "first":
            winner, loser = pair["first_sample_id"], pair["second_sample_id"]
    assert await preview("preference", comparison_ids=[comparison["id"]]) == 1
    assert await preview("preference", comparison_ids=[comparison["id"]], include_free_pairs=True) == 2
    response = await client.post("/api/datasets", json={
        "name": "votes", "kind": "preference", "from_feedback": {"comparison_ids": [comparison["id"]]}})
    assert response.status_code == 201, response.text
    votes = (await client.get(f"/api/datasets/{response.json()['id']}")).json()
    [pair] = votes["pairs"]
    assert (pair["prompt"], pair["chosen"]["sha256"], pair["rejected"]["sha256"]) == (
        "duel", (await client.get(f"/api/samples/{winner}")).json()["sha256"],
        (await client.get(f"/api/samples/{loser}")).json()["sha256"])

    # Adapter 2 learns from the votes about adapter 1: its lineage leads back to adapter 1.
    second = await studio.adapter(votes["id"], name="round two")
    lineage = (await client.get(f"/api/adapters/{second}/lineage")).json()
    assert lineage["run"]["dataset"]["id"] == votes["id"]
    assert lineage["run"]["dataset"]["filter"]["comparison_ids"] == [comparison["id"]]
    assert [(c["id"], c["votes_taken"]) for c in lineage["run"]["dataset"]["comparisons"]] == [(comparison["id"], 1)]
    assert [parent["adapter_id"] for parent in lineage["learned_from"]] == [adapter_id]
    assert lineage["learned_from_base_model"] is True
    assert lineage["learned_from"][0]["run"]["dataset"]["filter"] is None  # adapter 1 trained on uploads


async def test_bad_input_to_each_studio_endpoint_is_refused_and_changes_nothing(studio, client, refused_unchanged):
    generation = await studio.request(num_samples=2)
    await studio.generate(generation["id"])
    sample = sample_id(generation["id"], 0)
    comparison = await compare(studio, client, await studio.adapter(), ["duel"], samples_per_prompt=1)
    [created] = await studio.bus.history("comparison", comparison["id"])
    waiting_pair = created.event.pairs[0].pair_id
    post = client.post
    cases = [
        ("no prompt", post("/api/generations", json={}), 422, ["body", "prompt"], "Field required"),
        ("a NUL in the prompt", post("/api/generations", json={"prompt": "a\x00b"}), 422, ["body", "prompt"], "NUL"),
        ("nine samples", post("/api/generations", json={"prompt": "p", "num_samples": 9}), 422, ["body", "num_samples"],
         "less than or equal to 8"),
        ("an endless duration", post("/api/generations", json={"prompt": "p", "duration_seconds": 1e9}), 422,
         ["body", "duration_seconds"], "less than or equal to 120"),
        ("an unknown adapter", post("/api/generations", json={"prompt": "p", "adapter_id": "nope"}), 404, None,
         "adapter 'nope' not found"),
        ("a rating of 6", post(f"/api/samples/{sample}/ratings", json={"rating": 6}), 422, ["body", "rating"],
         "less than or equal to 5"),
        ("an unknown criterion", post(f"/api/samples/{sample}/ratings", json={"rating": 3, "criterion": "vibe"}), 422,
         ["body", "criterion"], "'overall'"),
        ("a rating of an unknown sample", post("/api/samples/nope/ratings", json={"rating": 3}), 404, None,
         "sample 'nope' not found"),
        ("an empty tag", post(f"/api/samples/{sample}/tags", json={"tag": ""}), 422, ["body", "tag"], "at least 1"),
        ("removing a tag it lacks", client.delete(f"/api/samples/{sample}/tags/absent"), 404, None, "'absent' not found"),
        ("a favourite of an unknown sample", client.put("/api/samples/nope/favorite"), 404, None, "sample 'nope'"),
        ("preferring a sample to itself", post("/api/preferences", json={"chosen_sample_id": sample,
         "rejected_sample_id": sample}), 422, ["body", "rejected_sample_id"], "another sample"),
        ("a comparison without prompts", post("/api/comparisons", json={"name": "x", "a": {"adapter_id": None},
         "b": {"adapter_id": None}, "prompts": []}), 422, ["body", "prompts"], "at least 1"),
        ("a vote on an unknown pair", post(f"/api/comparisons/{comparison['id']}/votes",
         json={"pair_id": "nope", "choice": "first"}), 404, None, "pair 'nope' not found"),
        ("a vote on a pair not generated yet", post(f"/api/comparisons/{comparison['id']}/votes",
         json={"pair_id": waiting_pair, "choice": "first"}), 409, None, "is not ready"),
        ("a vote of 'maybe'", post(f"/api/comparisons/{comparison['id']}/votes", json={"pair_id": "p", "choice": "maybe"}),
         422, ["body", "choice"], "'first'"),
        ("results of an unknown comparison", client.get("/api/comparisons/nope/results"), 404, None,
         "comparison 'nope' not found"),
        ("a rating filter on a preference dataset", post("/api/datasets/preview", json={"kind": "preference",
         "filter": {"min_rating": 3}}), 422, ["body", "filter", "min_rating"], "does not apply to a preference dataset"),
        ("max below min", post("/api/datasets/preview", json={"kind": "supervised", "filter": {"min_rating": 4,
         "max_rating": 2}}), 422, ["body", "filter", "max_rating"], "below min_rating"),
        ("an unknown comparison in a filter", post("/api/datasets", json={"name": "d", "kind": "preference",
         "from_feedback": {"comparison_ids": ["nope"]}}), 404, None, "comparison 'nope' not found"),
        ("a filter selecting nothing", post("/api/datasets", json={"name": "d", "kind": "supervised",
         "from_feedback": {"q": "no such prompt"}}), 422, ["body", "from_feedback"], "selects no samples"),
    ]
    for case, request, status, loc, message in cases:
        await refused_unchanged(case, request, status, loc, message)
