"""A generation worker dies mid-request (kill -9): another worker generates the request again, and
each sample is stored once, under the ids the request's samples always have. A worker that stops
gracefully hands its request back without using up one of the generation's attempts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from events.generations import sample_id

REPOSITORY = Path(__file__).resolve().parents[2]
LONG = 20.0  # seconds of audio: a few seconds of generating, so the worker is still at it when stopped


def start_worker_process(settings, name: str, log: Path) -> subprocess.Popen:
    """`python -m services.generator` as its own OS process, so the test can kill -9 it."""
    env = {**os.environ, "NATS_URL": settings.nats_url, "CADENZA_NAMESPACE": settings.namespace}
    return subprocess.Popen(
        [sys.executable, "-m", "services.generator", "--worker-id", name, "--ack-wait", "4", "--device", "cpu",
         "--precision", "fp32", "--cache-dir", str(settings.cache_dir / name)],
        cwd=REPOSITORY, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )


async def test_a_generation_whose_worker_is_killed_completes_once_on_another_worker(studio, tmp_path):
    doomed = start_worker_process(studio.cadenza.settings, "doomed", tmp_path / "doomed.log")
    try:
        generation = await studio.request(duration_seconds=LONG, num_samples=2)
        started = await studio.wait_for_event(generation["id"], "GenerationStarted")
        assert started.event.worker_id == "doomed"
        await studio.wait_for_event(generation["id"], "GenerationProgressed")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    finally:
        doomed.kill()

    studio.start_worker("survivor")
    finished = await studio.wait_for_generation(generation["id"], timeout=300)

    assert finished["status"] == "completed", finished
    history = await studio.history(generation["id"])
    starts = [(s.event.attempt, s.event.worker_id) for s in history if s.envelope.type == "GenerationStarted"]
    assert starts == [(1, "doomed"), (2, "survivor")]
    samples = [s.event for s in history if s.envelope.type == "SampleGenerated"]
    assert sorted((s.index, s.sample_id) for s in samples) == [(i, sample_id(generation["id"], i)) for i in range(2)]
    assert [s.envelope.type for s in history].count("GenerationCompleted") == 1
    assert [s["id"] for s in finished["samples"]] == [sample_id(generation["id"], i) for i in range(2)]
    assert finished["attempt"] == 2


async def test_a_generation_handed_back_by_a_stopping_worker_does_not_use_up_an_attempt(studio):
    # one attempt each: the successor's delivery is the second, so only the hand-back lets it generate
    stopping = studio.start_worker("stopping", max_attempts=1)
    generation = await studio.request(duration_seconds=LONG)
    await studio.wait_for_event(generation["id"], "GenerationProgressed")
    await stopping.shut_down()

    studio.start_worker("successor", max_attempts=1)
    finished = await studio.wait_for_generation(generation["id"], timeout=300)

    assert (finished["status"], finished["attempt"], finished["error"]) == ("completed", 2, None), finished
    events = [(s.envelope.type, getattr(s.event, "worker_id", None)) for s in await studio.history(generation["id"])
              if s.envelope.type in {"GenerationStarted", "GenerationHandedBack"}]
    assert events == [("GenerationStarted", "stopping"), ("GenerationHandedBack", None), ("GenerationStarted", "successor")]
