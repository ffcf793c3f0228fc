"""A trainer with `gpus=2` trains each run in two gloo processes under torchrun."""
from __future__ import annotations


async def test_a_run_trains_under_torchrun_and_a_stop_reaches_its_processes(cadenza, training_config):
    trainer = cadenza.start_trainer("two", gpus=2)
    experiment = await cadenza.supervised_experiment(training_config(max_steps=2, checkpoint_every=2,
                                                                     batch_size=2), clips=2)
    run = await cadenza.request_run(experiment)
    run = await cadenza.wait_for_run(run["id"])
    assert (run["status"], run["steps"]) == ("completed", 2), run
    # Process 0 alone speaks: each step once, one adapter.
    metrics = await cadenza.get(f"/api/runs/{run['id']}/metrics")
    assert [m["step"] for m in metrics if m["split"] == "train"] == [1, 2]
    [adapter] = await cadenza.get("/api/adapters")
    assert adapter["id"] == run["adapter_id"]

    # The trainer stops (SIGTERM to torchrun): both processes finish their step, process 0 checkpoints.
    long = await cadenza.request_run(
        await cadenza.supervised_experiment(training_config(max_steps=1000, checkpoint_every=500), name="long"))
    await cadenza.wait_for_event(long["id"], "LossReported")
    await trainer.shut_down()
    everything = await cadenza.bus.history("run", long["id"])
    logs = [line for s in everything if s.envelope.type == "RunLogged" for line in s.event.lines]
    assert sum("SIGTERM received" in line for line in logs) == 2, "each process was asked to stop"
    history = [s for s in everything if s.envelope.type != "RunLogged"]
    *steps, checkpoint, handed_back = history
    assert (checkpoint.envelope.type, handed_back.envelope.type) == ("CheckpointSaved", "RunHandedBack"), \
        "the last step was checkpointed, then the run handed back"
    losses = [s.event.step for s in steps if s.envelope.type == "LossReported"]
    assert checkpoint.event.step == len(losses) == losses[-1] < 100
