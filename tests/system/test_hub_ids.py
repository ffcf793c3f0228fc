"""A `base_model` that is a hub id is looked up on the hub alone, whatever folders lie where a worker runs.

transformers loads a hub id that names a folder relative to the working directory from that
folder. A worker that let it would load models from outside CADENZA_MODEL_DIRS, and its errors
would tell clients which folders it has ("no file named model.safetensors … in directory tests"
against "couldn't connect to huggingface.co"). The hub is out of reach in these tests
(HF_HUB_OFFLINE), so a hub id fails: alike whether or not a folder of its name lies beside the worker.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
NOWHERE = "no-such-musicgen"


def same_but_the_name(error: str, name: str) -> str:
    return error.replace(f"'{name}'", "'<name>'")


async def test_a_run_fails_alike_for_a_hub_id_whatever_folders_lie_where_the_trainer_runs(
        cadenza, training_config, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the training processes inherit it
    started_in = tmp_path / "trainer-started-here"
    started_in.mkdir()
    (started_in / "decoy-musicgen").symlink_to(tiny_model)
    monkeypatch.chdir(started_in)
    cadenza.start_trainer(concurrency=3)  # the three runs side by side
    # beside the trainer; beside the `model` package it trains with (its source folder or site-packages)
    names = ["decoy-musicgen", "services", NOWHERE]

    requested = [await cadenza.request_run(await cadenza.supervised_experiment(training_config(base_model=name),
                                                                               name=name)) for name in names]
    runs = [await cadenza.wait_for_run(run["id"]) for run in requested]

    assert [run["status"] for run in runs] == ["failed"] * 3, runs
    errors = [same_but_the_name(run["error"], name) for run, name in zip(runs, names)]
    assert errors == [errors[-1]] * 3, errors
    assert "couldn't connect to 'https://huggingface.co'" in errors[-1], errors[-1]


def start_worker_process(settings, started_in: Path, log: Path) -> subprocess.Popen:
    """`python -m services.generator`, started in `started_in` as an operator would start it there."""
    env = {**os.environ, "NATS_URL": settings.nats_url, "CADENZA_NAMESPACE": settings.namespace,
           "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-m", "services.generator", "--worker-id", "worker", "--device", "cpu", "--precision",
         "fp32", "--cache-dir", str(settings.cache_dir / "worker"), "--fetch-timeout", "0.5"],
        cwd=started_in, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )


async def test_a_generation_fails_alike_for_a_hub_id_whatever_folders_lie_where_its_worker_was_started(
        studio, tiny_model, tmp_path):
    # The worker loads base models in its own process: what counts is where its command was started.
    started_in = tmp_path / "worker-started-here"
    started_in.mkdir()
    (started_in / "decoy-musicgen").symlink_to(tiny_model)
    worker = start_worker_process(studio.cadenza.settings, started_in, tmp_path / "worker.log")
    try:
        names = ["decoy-musicgen", NOWHERE]
        requested = [await studio.request(base_model=name) for name in names]
        generations = [await studio.wait_for_generation(generation["id"]) for generation in requested]
    finally:
        worker.terminate()
        worker.wait(timeout=60)

    assert [generation["status"] for generation in generations] == ["failed"] * 2, generations
    errors = [same_but_the_name(generation["error"], name) for generation, name in zip(generations, names)]
    assert errors[0] == errors[1], errors
    assert "couldn't connect to 'https://huggingface.co'" in errors[1], errors[1]
