"""Retention on the real object store: superseded checkpoints are deleted, a finished run keeps
none (completed, its adapter supersedes them; cancelled or failed, it is never resumed), and no
attempt folder outlives its attempt."""
from __future__ import annotations

import asyncio

from events.base import ObjectRef
from events.catalogue import CheckpointSaved
from services.trainer.retention import KEPT_CHECKPOINTS, delete_superseded


async def checkpoint_names(bus) -> set[str]:
    store = await bus.js.object_store(bus.checkpoints_bucket)
    try:
        return {info.name for info in await store.list(ignore_deletes=True)}
    except Exception as error:  # nats-py raises NotFoundError for a bucket with no objects
        assert type(error).__name__ == "NotFoundError", error
        return set()


async def test_all_but_the_newest_checkpoints_are_deleted(cadenza):
    bus = cadenza.bus
    refs = [await bus.put_object(bus.checkpoints_bucket, f"run/attempt-1/step-{step}.tar", bytes([step]) * 10)
            for step in range(4)]
    other_run = await bus.put_object(bus.checkpoints_bucket, "other/attempt-1/step-0.tar", b"x")

    kept = await delete_superseded(bus, refs)

    assert kept == refs[-KEPT_CHECKPOINTS:] == refs[2:]
    assert await checkpoint_names(bus) == {"run/attempt-1/step-2.tar", "run/attempt-1/step-3.tar", other_run.name}
    assert await delete_superseded(bus, refs, keep=0) == []  # deleting again what is gone is no error
    assert await checkpoint_names(bus) == {other_run.name}


async def test_a_completed_run_leaves_no_checkpoint_objects_and_no_attempt_folder(cadenza, training_config):
    cadenza.start_trainer("trainer-a")
    experiment = await cadenza.supervised_experiment(training_config(), name="lofi")

    run = await cadenza.wait_for_run((await cadenza.request_run(experiment, name="first"))["id"])

    assert run["status"] == "completed", run
    saved = [stored.event.checkpoint for stored in await cadenza.bus.history("run", run["id"])
             if isinstance(stored.event, CheckpointSaved)]
    assert len(saved) == 3  # 6 steps, one every 2: published, then deleted
    assert all(isinstance(ref, ObjectRef) for ref in saved)
    assert await checkpoint_names(cadenza.bus) == set()
    assert not (cadenza.settings.cache_dir / "runs" / run["id"]).exists()


async def test_a_run_cancelled_after_its_checkpoints_leaves_no_checkpoint_objects(cadenza, training_config):
    cadenza.start_trainer("trainer-a")
    experiment = await cadenza.supervised_experiment(training_config(max_steps=1000, checkpoint_every=1))
    run = await cadenza.request_run(experiment)
    await cadenza.wait_for_event(run["id"], "CheckpointSaved")

    assert (await cadenza.client.post(f"/api/runs/{run['id']}/cancel")).status_code == 202
    assert (await cadenza.wait_for_run(run["id"], timeout=60))["status"] == "cancelled"

    # deleted right after the RunCancelled, which the API may show first (30 s: a bound on waiting)
    deadline = asyncio.get_running_loop().time() + 30
    while (left := await checkpoint_names(cadenza.bus)) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
    assert left == set()
    assert not (cadenza.settings.cache_dir / "runs" / run["id"]).exists()
