"""The studio loop end to end: an adapter is compared blind with the base model on samples the
generation worker makes, the votes become a preference dataset, and a DPO run trains on it."""
from __future__ import annotations

import asyncio

from services.generator.settings import DURABLE_NAME


async def wait_for_comparison(studio, comparison_id: str, status: str, timeout: float = 180) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        comparison = await studio.cadenza.get(f"/api/comparisons/{comparison_id}")
        if comparison["status"] == status:
            return comparison
        assert asyncio.get_running_loop().time() < deadline, f"comparison still {comparison['status']}"
        await asyncio.sleep(0.3)


async def test_votes_on_a_comparison_the_worker_generated_train_the_next_adapter(studio, training_config):
    cadenza = studio.cadenza
    studio.start_worker()
    adapter = await studio.train_adapter(training_config(max_steps=4))
    comparison = await cadenza.post("/api/comparisons", json={
        "name": "tuned vs base", "a": {"adapter_id": adapter["id"]}, "b": {"adapter_id": None},
        "prompts": ["calm lofi piano", "fast drums"], "samples_per_prompt": 2, "seed": 5,
        "duration_seconds": 1.0, "base_model": adapter["base_model"]})  # training takes clips of 1 s or more

    ready = await wait_for_comparison(studio, comparison["id"], "voting")
    assert (ready["pairs_total"], ready["pairs_ready"], ready["pairs_voted"]) == (4, 4, 0)
    for g in ready["generations"]:
        generation = await cadenza.get(f"/api/generations/{g['generation_id']}")
        assert (generation["status"], len(generation["samples"])) == ("completed", 2)

    # The voter always takes the sample shown first; which side that was is the recorded blind order.
    [created] = [s.event for s in await cadenza.bus.history("comparison", comparison["id"])]
    first_side = {pair.pair_id: pair.first for pair in created.pairs}
    for _ in range(4):
        pair = await cadenza.get(f"/api/comparisons/{comparison['id']}/next")
        await cadenza.post(f"/api/comparisons/{comparison['id']}/votes",
                           json={"pair_id": pair["pair_id"], "choice": "first"})
    assert (await cadenza.client.get(f"/api/comparisons/{comparison['id']}/next")).status_code == 204
    results = await cadenza.get(f"/api/comparisons/{comparison['id']}/results")
    a_wins = list(first_side.values()).count("a")
    assert (results["votes"], results["a_wins"], results["b_wins"], results["ties"]) == (4, a_wins, 4 - a_wins, 0)

    feedback = {"comparison_ids": [comparison["id"]]}
    preview = await cadenza.post("/api/datasets/preview", expected=200, json={"kind": "preference", "filter": feedback})
    assert preview["count"] == 4
    votes = await cadenza.post("/api/datasets", json={"name": "votes", "kind": "preference", "from_feedback": feedback})
    assert len((await cadenza.get(f"/api/datasets/{votes['id']}"))["pairs"]) == 4

    experiment = await cadenza.post("/api/experiments", json={
        "name": "round two", "dataset_id": votes["id"], "config": training_config(max_steps=2)})
    cadenza.start_trainer("trainer-2")
    run = await cadenza.wait_for_run((await cadenza.request_run(experiment))["id"])

    assert run["status"] == "completed", run["error"]
    second = await cadenza.get(f"/api/adapters/{run['adapter_id']}")
    assert second["dataset_type"] == "preference"
    lineage = await cadenza.get(f"/api/adapters/{second['id']}/lineage")
    assert lineage["run"]["dataset"]["id"] == votes["id"]
    # every generation request was taken and acked
    info = await cadenza.bus.js.consumer_info(cadenza.bus.stream, DURABLE_NAME)
    assert (info.num_ack_pending, info.num_pending) == (0, 0)
