"""A trainer dies mid-run (kill -9): another one resumes the run from its last uploaded checkpoint."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from fault_injection import assert_equal_to_a_clean_rebuild, until_folded

REPOSITORY = Path(__file__).resolve().parents[2]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:  # the process ended while we looked
            pass
    return found


def start_trainer_process(settings, name: str, log: Path, max_attempts: int = 3) -> subprocess.Popen:
    """`python -m services.trainer` as its own OS process, so the test can kill -9 it."""
    env = {**os.environ, "NATS_URL": settings.nats_url, "CADENZA_NAMESPACE": settings.namespace}
    return subprocess.Popen(
        [sys.executable, "-m", "services.trainer", "--trainer-id", name, "--ack-wait", "4",
         "--max-attempts", str(max_attempts), "--cache-dir", str(settings.cache_dir / name)],
        cwd=REPOSITORY, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )


async def test_a_run_whose_trainer_is_killed_completes_once_on_another_trainer(cadenza, training_config, tmp_path):
    doomed = start_trainer_process(cadenza.settings, "doomed", tmp_path / "doomed.log")
    try:
        experiment = await cadenza.supervised_experiment(training_config(max_steps=12, checkpoint_every=2))
        run = await cadenza.request_run(experiment)
        checkpoint = await cadenza.wait_for_event(run["id"], "CheckpointSaved", timeout=120)
        assert checkpoint.event.attempt == 1
        training = processes_mentioning(f"{run['id']}/attempt-1")
        assert training, "the training process should be running"

        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    finally:
        doomed.kill()
    await asyncio.sleep(0.5)
    assert processes_mentioning(f"{run['id']}/attempt-1") == [], "the training process must die with its trainer"

    cadenza.start_trainer("survivor")
    run = await cadenza.wait_for_run(run["id"])

    assert run["status"] == "completed", run
    history = await cadenza.bus.history("run", run["id"])
    started = [(s.event.attempt, s.event.trainer_id) for s in history if s.envelope.type == "RunStarted"]
    assert started == [(1, "doomed"), (2, "survivor")]
    checkpoints = [s.event for s in history if s.envelope.type == "CheckpointSaved"]
    resumed_from = max(c.step for c in checkpoints if c.attempt == 1)
    resumed_losses = [s.event.step for s in history if s.envelope.type == "LossReported" and s.event.attempt == 2]
    assert resumed_losses[0] == resumed_from + 1, "attempt 2 continues after the last uploaded checkpoint"
    assert [s.envelope.type for s in history].count("AdapterSaved") == 1
    assert [s.envelope.type for s in history].count("RunCompleted") == 1

    metrics = await cadenza.get(f"/api/runs/{run['id']}/metrics")
    assert [m["step"] for m in metrics if m["split"] == "train"] == list(range(1, 13))
    assert run["attempt"] == 2
    assert len(await cadenza.get("/api/adapters")) == 1
    logs = [line["line"] for line in await cadenza.get(f"/api/runs/{run['id']}/logs")]
    assert f"[trainer] resuming from the checkpoint of step {resumed_from}" in logs


async def test_a_run_whose_trainers_keep_dying_fails_after_the_last_attempt(cadenza, training_config, tmp_path):
    doomed = start_trainer_process(cadenza.settings, "doomed", tmp_path / "doomed.log", max_attempts=1)
    try:
        experiment = await cadenza.supervised_experiment(training_config(max_steps=1000))
        run = await cadenza.request_run(experiment)
        await cadenza.wait_for_event(run["id"], "RunStarted", timeout=120)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    finally:
        doomed.kill()

    cadenza.start_trainer("survivor", max_attempts=1)
    run = await cadenza.wait_for_run(run["id"])

    assert run["status"] == "failed"
    assert run["error"].startswith("gave up after 1 attempts")
    types = await cadenza.history_types(run["id"])
    assert types.count("RunStarted") == 1 and types[-1] == "RunFailed"


async def test_three_trainers_stopped_in_turn_hand_the_run_back_and_a_fourth_resumes_it(cadenza, training_config):
    experiment = await cadenza.supervised_experiment(training_config(max_steps=1000, checkpoint_every=10_000))
    run = await cadenza.request_run(experiment)
    resumed_from = 0
    for name in ("stopping-1", "stopping-2", "stopping-3"):
        stopping = cadenza.start_trainer(name)
        first = await wait_for_first_loss_on(cadenza, run["id"], name)
        assert first.step == resumed_from + 1, "each attempt resumes after the checkpoint of the one before"

        await stopping.shut_down()  # what Ctrl-C or SIGTERM does to `cadenza trainer`

        # it checkpointed where it stopped, then said it handed the run back (its last log lines may
        # come between; a request it fetched while stopping is handed back too): no failed attempt
        history = [s for s in await cadenza.bus.history("run", run["id"])
                   if s.envelope.type in {"CheckpointSaved", "RunHandedBack", "LossReported"}]
        last_checkpoint = max(i for i, s in enumerate(history) if s.envelope.type == "CheckpointSaved")
        assert history[last_checkpoint].event.attempt == first.attempt
        assert {s.envelope.type for s in history[last_checkpoint + 1:]} == {"RunHandedBack"}
        resumed_from = history[last_checkpoint].event.step
        assert resumed_from < 10_000, "the training process checkpointed where it stopped"
        assert (await cadenza.get(f"/api/runs/{run['id']}"))["status"] == "running"

    # three failed attempts are the default limit: three hand-backs must not count as any
    cadenza.start_trainer("fourth")
    first = await wait_for_first_loss_on(cadenza, run["id"], "fourth")

    assert first.step == resumed_from + 1
    history = await cadenza.bus.history("run", run["id"])
    started = [s.event.trainer_id for s in history if s.envelope.type == "RunStarted"]
    assert started == ["stopping-1", "stopping-2", "stopping-3", "fourth"]
    assert not {"RunAttemptFailed", "RunFailed"} & {s.envelope.type for s in history}
    assert (await cadenza.client.post(f"/api/runs/{run['id']}/cancel")).status_code == 202
    assert (await cadenza.wait_for_run(run["id"], timeout=60))["status"] == "cancelled"
    await until_folded(cadenza.settings)
    await assert_equal_to_a_clean_rebuild(cadenza.settings)


async def wait_for_first_loss_on(cadenza, run_id: str, trainer_id: str, timeout: float = 120):
    """The first loss of the attempt `trainer_id` started (attempts count deliveries, so a request
    handed back unstarted skips a number)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        history = await cadenza.bus.history("run", run_id)
        attempts = {s.event.attempt for s in history if s.envelope.type == "RunStarted" and s.event.trainer_id == trainer_id}
        for stored in history:
            assert stored.envelope.type != "RunFailed", f"the run failed: {stored.event.error}"
            if stored.envelope.type == "LossReported" and stored.event.attempt in attempts:
                return stored.event
        assert asyncio.get_running_loop().time() < deadline, f"{trainer_id} reported no loss"
        await asyncio.sleep(0.2)


async def test_an_attempt_that_fails_in_the_trainer_is_retried_and_the_run_fails_with_its_error(cadenza, training_config):
    # A trainer that cannot start the model CLI (its python is missing): another might, so it retries.
    cadenza.start_trainer("misconfigured", python="/nonexistent/python", max_attempts=2)
    experiment = await cadenza.supervised_experiment(training_config())

    run = await cadenza.wait_for_run((await cadenza.request_run(experiment))["id"], timeout=60)

    assert run["status"] == "failed"
    assert run["error"].startswith("gave up after 2 attempts: the last one failed in the trainer with "
                                   "FileNotFoundError"), run["error"]
    assert "/nonexistent/python" in run["error"]
    types = await cadenza.history_types(run["id"])
    assert types.count("RunStarted") == 2 and types[-1] == "RunFailed"
