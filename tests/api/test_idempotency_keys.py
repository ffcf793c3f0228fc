"""Every command that creates something, sent again with its Idempotency-Key, answers with what the
first one created and stores nothing more; the same request under another key creates anew."""
from __future__ import annotations


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
