"""Every command that creates something, sent again with its Idempotency-Key, answers with what the
first one created and stores nothing more; the same request under another key creates anew. A
removal, a cancel or a vote sent again with its key answers as the first did, where a repeat
without it (or under another key) is refused as one."""
from __future__ import annotations

from events.generations import sample_id
from tests.api.test_studio import compare, studio  # noqa: F401 (a fixture)


async def test_each_creating_command_sent_twice_with_its_key_creates_once(api, client, stored, tone) -> None:
    dataset = await api.dataset()
    preference = await api.dataset("preference", name="pairs")
    experiment_body = {"name": "e", "dataset_id": dataset["id"], "config": {}}
    commands = {
        "clip": lambda key: client.post(f"/api/datasets/{dataset['id']}/clips", data={"prompt": "piano"},
                                        files={"file": ("a.wav", tone())}, headers=key),
        "pair": lambda key: client.post(f"/api/datasets/{preference['id']}/pairs", data={"prompt": "synth"},
                                        files={"chosen": ("c.wav", tone()), "rejected": ("r.wav", tone(frequency=220))},
                                        headers=key),
        "experiment": lambda key: client.post("/api/experiments", json=experiment_body, headers=key),
    }
    for name, command in commands.items():
        first = await command({"Idempotency-Key": f"{name}-once"})
        assert first.status_code == 201, (name, first.text)
        before = await stored()
        again = await command({"Idempotency-Key": f"{name}-once"})
        assert (again.status_code, again.json()) == (201, first.json()), name
        assert await stored() == before, name
        other = await command({"Idempotency-Key": f"{name}-other"})
        assert other.status_code == 201 and other.json()["id"] != first.json()["id"], name

    experiment = (await client.get("/api/experiments")).json()[0]
    first = await client.post(f"/api/experiments/{experiment['id']}/runs", json={}, headers={"Idempotency-Key": "run"})
    assert first.status_code == 201, first.text
    before = await stored()
    again = await client.post(f"/api/experiments/{experiment['id']}/runs", json={}, headers={"Idempotency-Key": "run"})
    assert again.json()["id"] == first.json()["id"] and await stored() == before
    assert len((await client.get("/api/runs")).json()) == 1


async def test_a_removal_sent_again_with_its_key_answers_as_the_first_also_after_later_removals(api, client,
                                                                                                  stored) -> None:
    dataset = await api.dataset()
    clips = [(await api.upload_clip(dataset["id"], prompt=f"piano {i}")).json() for i in range(2)]
    preference = await api.dataset("preference", name="pairs")
    pair = (await api.upload_pair(preference["id"])).json()
    removals = {"clip": f"/api/datasets/{dataset['id']}/clips/{clips[0]['id']}",
                "pair": f"/api/datasets/{preference['id']}/pairs/{pair['id']}"}
    for name, path in removals.items():
        key = {"Idempotency-Key": f"remove-{name}"}
        assert (await client.delete(path, headers=key)).status_code == 204, name
        before = await stored()
        again = await client.delete(path, headers=key)
        assert (again.status_code, again.content) == (204, b""), (name, again.text)
        assert await stored() == before, name
        assert (await client.delete(path)).status_code == 404, name
        assert (await client.delete(path, headers={"Idempotency-Key": f"other-{name}"})).status_code == 404, name

    # Another clip removed since: the first removal is no longer the last one of the dataset.
    assert (await client.delete(f"/api/datasets/{dataset['id']}/clips/{clips[1]['id']}")).status_code == 204
    before = await stored()
    assert (await client.delete(removals["clip"], headers={"Idempotency-Key": "remove-clip"})).status_code == 204
    assert await stored() == before


async def test_a_run_cancel_sent_again_with_its_key_answers_as_the_first(api, client, stored) -> None:
    run = await api.run((await api.supervised_experiment())["id"])
    path, key = f"/api/runs/{run['id']}/cancel", {"Idempotency-Key": "cancel-run"}
    first = await client.post(path, headers=key)
    assert (first.status_code, first.json()["status"]) == (200, "cancelled"), first.text
    before = await stored()

    again = await client.post(path, headers=key)

    assert (again.status_code, again.json()) == (200, first.json())
    assert await stored() == before
    assert (await client.post(path)).status_code == 409
    assert (await client.post(path, headers={"Idempotency-Key": "cancel-again"})).status_code == 409


async def test_studio_commands_sent_again_with_their_key_answer_as_the_first(studio, client, stored) -> None:
    generation = await studio.request(num_samples=1)
    cancel, key = f"/api/generations/{generation['id']}/cancel", {"Idempotency-Key": "cancel-generation"}
    first = await client.post(cancel, headers=key)
    assert (first.status_code, first.json()["status"]) == (200, "cancelled"), first.text
    before = await stored()
    again = await client.post(cancel, headers=key)
    assert (again.status_code, again.json()) == (200, first.json())
    assert await stored() == before
    assert (await client.post(cancel)).status_code == 409

    generated = await studio.request(num_samples=1)
    await studio.generate(generated["id"])
    sample = sample_id(generated["id"], 0)
    assert (await client.post(f"/api/samples/{sample}/tags", json={"tag": "warm"})).status_code == 201
    untag, key = f"/api/samples/{sample}/tags/warm", {"Idempotency-Key": "untag"}
    first = await client.delete(untag, headers=key)
    assert (first.status_code, first.json()["tags"]) == (200, []), first.text
    before = await stored()
    again = await client.delete(untag, headers=key)
    assert (again.status_code, again.json()) == (200, first.json())
    assert await stored() == before
    assert (await client.delete(untag)).status_code == 404


async def test_a_vote_sent_again_with_its_key_answers_as_the_first_and_another_vote_under_it_is_refused(
        studio, client, stored) -> None:
    comparison = await compare(studio, client, await studio.adapter(), ["duel"], samples_per_prompt=2)
    for generation in comparison["generations"]:
        await studio.generate(generation["generation_id"])
    votes, key = f"/api/comparisons/{comparison['id']}/votes", {"Idempotency-Key": "vote"}
    voted = (await client.get(f"/api/comparisons/{comparison['id']}/next")).json()["pair_id"]
    first = await client.post(votes, json={"pair_id": voted, "choice": "first"}, headers=key)
    assert (first.status_code, first.json()["pairs_voted"]) == (201, 1), first.text
    before = await stored()

    again = await client.post(votes, json={"pair_id": voted, "choice": "first"}, headers=key)

    assert (again.status_code, again.json()) == (201, first.json())
    assert await stored() == before
    assert (await client.post(votes, json={"pair_id": voted, "choice": "first"})).status_code == 409
    other = (await client.get(f"/api/comparisons/{comparison['id']}/next")).json()["pair_id"]
    for body in ({"pair_id": voted, "choice": "second"}, {"pair_id": other, "choice": "first"}):
        reused = await client.post(votes, json=body, headers=key)
        assert reused.status_code == 422, (body, reused.text)
        assert reused.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
        assert await stored() == before, body
    assert (await client.post(votes, json={"pair_id": other, "choice": "first"},
                              headers={"Idempotency-Key": "second vote"})).status_code == 201


async def test_a_dataset_drawn_from_feedback_sent_again_with_its_key_answers_as_first_drawn(
        studio, client, observer_bus, stored) -> None:
    generation = await studio.request(num_samples=3)
    await studio.generate(generation["id"])
    s0, s1, s2 = (sample_id(generation["id"], index) for index in range(3))
    for sample, rating in ((s0, 2), (s1, 5), (s2, 5)):
        assert (await client.post(f"/api/samples/{sample}/ratings", json={"rating": rating})).status_code == 201
    body, key = {"name": "liked", "kind": "supervised", "from_feedback": {"min_rating": 4}}, {"Idempotency-Key": "draw"}
    first = await client.post("/api/datasets", json=body, headers=key)
    assert (first.status_code, first.json()["clip_count"]) == (201, 2), first.text
    clips = [clip["id"] for clip in (await client.get(f"/api/datasets/{first.json()['id']}")).json()["clips"]]
    # Feedback given since selects s0, which comes before the samples drawn, and a newer sample.
    later = await studio.request(num_samples=1)
    await studio.generate(later["id"])
    for sample in (s0, sample_id(later["id"], 0)):
        assert (await client.post(f"/api/samples/{sample}/ratings", json={"rating": 5})).status_code == 201
    before = await stored()

    again = await client.post("/api/datasets", json=body, headers=key)

    assert (again.status_code, again.json()) == (201, first.json())
    assert await stored() == before
    detail = (await client.get(f"/api/datasets/{first.json()['id']}")).json()
    assert [clip["id"] for clip in detail["clips"]] == clips
    drawn = (await observer_bus.history("dataset", first.json()["id"]))[1].event
    assert [(clip.clip_id, clip.sample_id) for clip in drawn.clips] == list(zip(clips, (s1, s2)))
