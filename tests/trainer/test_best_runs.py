"""An experiment shows its best run per training type: the completed run with the lowest final loss.
No training here: the test publishes what trainers would, as the API's own run tests do."""
from __future__ import annotations

from events.catalogue import RunCompleted, RunFailed, RunStarted


async def finish(cadenza, run: dict, final_loss: float | None) -> None:
    events = [RunStarted(run_id=run["id"], attempt=1, trainer_id="t")]
    if final_loss is None:
        events.append(RunFailed(run_id=run["id"], attempt=1, error="out of memory"))
    else:
        events.append(RunCompleted(run_id=run["id"], attempt=1, final_loss=final_loss, steps=10, seconds=1.0,
                                   adapter_id=f"adapter-{run['id']}"))
    await cadenza.bus.publish_many(events)
    await cadenza.wait_for_run(run["id"], timeout=10)


async def test_the_best_run_of_each_training_type_is_the_completed_one_with_the_lowest_loss(cadenza):
    experiment = await cadenza.supervised_experiment({})
    path = f"/api/experiments/{experiment['id']}"
    assert (await cadenza.get(path))["best_runs"] == {"supervised": None, "preference": None}

    worse, better, failed, queued = [await cadenza.request_run(experiment) for _ in range(4)]
    await finish(cadenza, worse, 2.0)
    await finish(cadenza, better, 1.5)
    await finish(cadenza, failed, None)
    # the experiment moves to a preference dataset: its next runs train with DPO, whose loss is not comparable
    pairs = await cadenza.preference_experiment({})
    response = await cadenza.client.patch(path, json={"dataset_id": pairs["dataset_id"]})
    assert response.status_code == 200, response.text
    dpo = await cadenza.request_run(experiment)
    await finish(cadenza, dpo, 0.6)

    best = (await cadenza.get(path))["best_runs"]

    assert (best["supervised"]["id"], best["supervised"]["final_loss"]) == (better["id"], 1.5)
    assert (best["preference"]["id"], best["preference"]["dataset_type"]) == (dpo["id"], "preference")
    listed = {e["id"]: e["best_runs"] for e in await cadenza.get("/api/experiments")}
    assert listed[experiment["id"]] == best
    assert queued["status"] == "queued"
