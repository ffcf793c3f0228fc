"""A real training run through faults of the servers it depends on: PostgreSQL stopped, NATS away
for longer than a publish waits for its ack, mid-training or while the adapter uploads. The run
trains on, ends completed in one attempt, and the read models folded through the fault equal a
clean rebuild.

A fault mid-training is injected once the run has saved its first checkpoint (every 2 steps
here), with most of the run's 30 steps still to come."""
from __future__ import annotations

import asyncio

import pytest

import events.bus
from fault_injection import assert_equal_to_a_clean_rebuild, until, until_folded

STEPS = 30


async def test_a_run_completes_while_postgresql_is_stopped_and_restarted_mid_training(
        cadenza_on_restartable_postgres, restartable_postgres, training_config, caplog):
    cadenza = cadenza_on_restartable_postgres
    cadenza.start_trainer()
    experiment = await cadenza.supervised_experiment(training_config(max_steps=STEPS, checkpoint_every=2))
    run = await cadenza.request_run(experiment)
    await cadenza.wait_for_event(run["id"], "CheckpointSaved")
    assert "RunCompleted" not in await cadenza.history_types(run["id"]), "the fault must land mid-training"

    restartable_postgres.stop()
    # The trainer needs only NATS: the run trains on and ends while the registry cannot fold it.
    await cadenza.wait_for_event(run["id"], "RunCompleted")
    await until(lambda: cadenza.projector.done() or "reading again from the checkpoint" in caplog.text,
                "the registry meeting the stopped PostgreSQL")
    assert not cadenza.projector.done(), "the registry must outlive PostgreSQL"
    restartable_postgres.start()

    run = await until_completed(cadenza, run["id"])
    assert (run["attempt"], run["error"]) == (1, None)
    metrics = await cadenza.get(f"/api/runs/{run['id']}/metrics")
    assert [m["step"] for m in metrics if m["split"] == "train"] == list(range(1, STEPS + 1))
    assert [adapter["run_id"] for adapter in await cadenza.get("/api/adapters")] == [run["id"]]
    await until_folded(cadenza.settings)
    await assert_equal_to_a_clean_rebuild(cadenza.settings)


@pytest.mark.parametrize("outage", ["stopped", "hung"])
async def test_a_run_completes_once_through_a_nats_outage_longer_than_a_publish_waits_for_its_ack(
        cadenza_on_restartable_nats, restartable_nats, training_config, outage):
    away, back = {"stopped": (restartable_nats.stop, restartable_nats.start),
                  "hung": (restartable_nats.hang, restartable_nats.resume)}[outage]
    cadenza = cadenza_on_restartable_nats
    cadenza.start_trainer()
    experiment = await cadenza.supervised_experiment(training_config(max_steps=STEPS, checkpoint_every=2))
    run = await cadenza.request_run(experiment)
    await cadenza.wait_for_event(run["id"], "CheckpointSaved")
    assert "RunCompleted" not in await cadenza.history_types(run["id"]), "the fault must land mid-training"

    away()
    await asyncio.sleep(2 * events.bus.REQUEST_TIMEOUT)  # the run trains on; its publishes get no ack
    back()

    await cadenza.wait_for_event(run["id"], "RunCompleted")
    history = await cadenza.bus.history("run", run["id"])
    types = [stored.envelope.type for stored in history]
    assert types.count("RunStarted") == 1 and "RunAttemptFailed" not in types, types
    steps = sorted(stored.event.step for stored in history
                   if stored.envelope.type == "LossReported" and stored.event.split == "train")
    assert steps == list(range(1, STEPS + 1)), "each step once: none lost in the outage, none stored twice"

    run = await until_completed(cadenza, run["id"])
    assert (run["attempt"], run["error"]) == (1, None)
    logs = [line["line"] for line in await cadenza.get(f"/api/runs/{run['id']}/logs")]
    assert not [line for line in logs if "fail" in line.lower()], "no attempt failed"
    await until_folded(cadenza.settings)
    await assert_equal_to_a_clean_rebuild(cadenza.settings)


async def test_a_run_whose_adapter_uploads_during_a_nats_outage_completes_in_one_attempt(
        cadenza_on_restartable_nats, restartable_nats, training_config):
    cadenza = cadenza_on_restartable_nats
    cadenza.start_trainer()
    # One checkpoint, at the last step; then the training process writes the adapter and exits.
    experiment = await cadenza.supervised_experiment(training_config(max_steps=4, checkpoint_every=100))
    run = await cadenza.request_run(experiment)
    await cadenza.wait_for_event(run["id"], "CheckpointSaved")
    assert "AdapterSaved" not in await cadenza.history_types(run["id"]), "the fault must land before the upload"

    restartable_nats.stop()
    await asyncio.sleep(2 * events.bus.REQUEST_TIMEOUT)  # the adapter's upload gets no answer
    restartable_nats.start()

    await cadenza.wait_for_event(run["id"], "RunCompleted")
    types = await cadenza.history_types(run["id"])
    assert types.count("RunStarted") == 1 and "RunAttemptFailed" not in types, types
    run = await until_completed(cadenza, run["id"])
    assert (run["attempt"], run["error"]) == (1, None)
    await until_folded(cadenza.settings)
    await assert_equal_to_a_clean_rebuild(cadenza.settings)


async def until_completed(cadenza, run_id: str) -> dict:
    """The run once the read models show it completed; answers of 503 while a server comes back
    are asked again."""
    async def completed() -> dict | None:
        run = await cadenza.get(f"/api/runs/{run_id}")
        return run if run["status"] == "completed" else None

    return await until(completed, "the run completed in the read models")
