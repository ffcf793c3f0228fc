"""An experiment shows its best run per training type: the completed run with the lowest final loss.
No training here: the test publishes what trainers would, as the API's own run tests do."""
from __future__ import annotations

import asyncpg

from events.catalogue import RunCompleted, RunFailed, RunStarted
from services.registry.read_your_writes import wait_until_projected


async def test_the_best_run_of_each_training_type_is_the_completed_one_with_the_lowest_loss(
        api, client, observer_bus, settings):
    async def finish(run: dict, final_loss: float | None) -> None:
        events = [RunStarted(run_id=run["id"], attempt=1, trainer_id="t")]
        if final_loss is None:
            events.append(RunFailed(run_id=run["id"], attempt=1, error="out of memory"))
        else:
            events.append(RunCompleted(run_id=run["id"], attempt=1, final_loss=final_loss, steps=10, seconds=1.0,
                                       adapter_id=f"adapter-{run['id']}"))
        last = max(await observer_bus.publish_many(events))
        async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=1) as pool:
            await wait_until_projected(pool, last)

    async def get(path: str) -> dict | list:
        response = await client.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    experiment = await api.supervised_experiment()
    path = f"/api/experiments/{experiment['id']}"
    assert (await get(path))["best_runs"] == {"supervised": None, "preference": None}

    worse, better, failed, queued = [await api.run(experiment["id"]) for _ in range(4)]
    await finish(worse, 2.0)
    await finish(better, 1.5)
    await finish(failed, None)
    # the experiment moves to a preference dataset: its next runs train with DPO, whose loss is not comparable
    pairs = await api.dataset("preference", name="synthwave pairs")
    assert (await api.upload_pair(pairs["id"])).status_code == 201
    response = await client.patch(path, json={"dataset_id": pairs["id"]})
    assert response.status_code == 200, response.text
    dpo = await api.run(experiment["id"])
    await finish(dpo, 0.6)

    best = (await get(path))["best_runs"]

    assert (best["supervised"]["id"], best["supervised"]["final_loss"]) == (better["id"], 1.5)
    assert (best["preference"]["id"], best["preference"]["dataset_type"]) == (dpo["id"], "preference")
    listed = {e["id"]: e["best_runs"] for e in await get("/api/experiments")}
    assert listed[experiment["id"]] == best
    assert queued["status"] == "queued"
