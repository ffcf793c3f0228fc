"""Several trainers share the queue of run requests: each run is trained by exactly one of them."""
from __future__ import annotations

import asyncio


async def test_three_trainers_share_the_runs_and_each_run_is_trained_once(cadenza, training_config):
    experiment = await cadenza.supervised_experiment(training_config(max_steps=2))
    runs = [await cadenza.request_run(experiment) for _ in range(4)]

    # "a" trains two runs at once, "b" and "c" one each
    for name, concurrency in (("a", 2), ("b", 1), ("c", 1)):
        cadenza.start_trainer(name, concurrency=concurrency)
    finished = await asyncio.gather(*(cadenza.wait_for_run(run["id"], timeout=300) for run in runs))

    assert [run["status"] for run in finished] == ["completed"] * 4
    trained_by = {}
    for run in runs:
        history = await cadenza.bus.history("run", run["id"])
        started = [s.event for s in history if s.envelope.type == "RunStarted"]
        assert len(started) == 1, f"run {run['id']} was started {len(started)} times"
        trained_by[run["id"]] = started[0].trainer_id
        assert [s.envelope.type for s in history].count("RunCompleted") == 1
    # four queued runs, four free slots: every trainer took work
    assert set(trained_by.values()) == {"a", "b", "c"}
    assert len(await cadenza.get("/api/adapters")) == 4
    # the trainers share one cache folder here: the dataset's one clip was fetched into it once
    objects = cadenza.settings.cache_dir / "objects"
    assert [path.name for path in objects.iterdir()] == [(await cadenza.get(
        f"/api/datasets/{experiment['dataset_id']}"))["clips"][0]["sha256"]]
