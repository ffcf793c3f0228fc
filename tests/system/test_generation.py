"""Generations requested through the API and fulfilled by a generation worker with the tiny MusicGen:
with and without a trained adapter, reproducible by seed, and failed with the reason when the
request cannot be generated."""
from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import soundfile

from events.catalogue import AdapterSaved, RunCompleted
from events.generations import sample_id

SAMPLE_RATE = 32_000  # the tiny model's


def decoded(audio: bytes) -> tuple[np.ndarray, int]:
    samples, rate = soundfile.read(io.BytesIO(audio), dtype="float32")
    return samples, rate


async def until_cached(folder, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not folder.exists():
        assert asyncio.get_running_loop().time() < deadline, f"{folder} never appeared"
        await asyncio.sleep(0.2)


async def test_samples_of_the_base_model_and_of_an_adapter_are_stored_listed_and_reproducible_by_seed(
        studio, training_config):
    worker = studio.start_worker()
    adapter = await studio.train_adapter(training_config(max_steps=6))
    # the worker fetched and loaded the new adapter when the trainer announced it
    await until_cached(studio.cadenza.settings.cache_dir / worker.name / "adapters" / adapter["sha256"])

    base = await studio.request(seed=11)
    tuned = await studio.request(seed=11, adapter_id=adapter["id"])
    tuned_again = await studio.request(seed=11, adapter_id=adapter["id"])
    # The answer reads the generation once its request is projected; an idle worker may have
    # started it by then.
    assert base["status"] in ("queued", "running"), base
    finished = [await studio.wait_for_generation(g["id"]) for g in (base, tuned, tuned_again)]

    assert [g["status"] for g in finished] == ["completed"] * 3, finished
    audio = {}
    for generation in finished:
        assert [s["id"] for s in generation["samples"]] == [sample_id(generation["id"], i) for i in range(2)]
        assert (generation["attempt"], generation["worker_id"]) == (1, "worker-1")
        audio[generation["id"]] = [await studio.audio(s["id"]) for s in generation["samples"]]
        for sample, data in zip(generation["samples"], audio[generation["id"]]):
            assert (sample["sha256"], sample["size"]) == (hashlib.sha256(data).hexdigest(), len(data))
            samples, rate = decoded(data)
            assert rate == sample["sample_rate"] == SAMPLE_RATE
            assert len(samples) == round(sample["duration_seconds"] * rate)
            assert 0.4 <= sample["duration_seconds"] <= 0.6
            assert np.abs(samples).max() > 0, "the decoder made sound, not silence"
    assert finished[1]["base_model"] == adapter["base_model"]

    # same seed and adapter: the same bytes; the adapter changes what the base model makes
    assert audio[tuned["id"]] == audio[tuned_again["id"]]
    assert audio[tuned["id"]][0] != audio[base["id"]][0]
    # the samples of one request differ from each other (one batch, not one sample copied)
    assert audio[base["id"]][0] != audio[base["id"]][1]
    listed = await studio.cadenza.get(f"/api/samples?adapter_id={adapter['id']}")
    assert sorted(s["id"] for s in listed) == sorted(s["id"] for g in finished[1:] for s in g["samples"])

    history = await studio.history(base["id"])
    types = [s.envelope.type for s in history]
    assert types[:2] == ["GenerationRequested", "GenerationStarted"] and types[-1] == "GenerationCompleted"
    assert types.count("SampleGenerated") == 2
    progress = [s.event for s in history if s.envelope.type == "GenerationProgressed"]
    assert progress and progress[-1].steps_done == progress[-1].steps_total
    assert types.index("GenerationProgressed") < types.index("SampleGenerated")


async def test_a_request_that_cannot_be_generated_fails_with_the_reason(studio, training_config):
    studio.start_worker()
    # an adapter whose weights are not an adapter, as a broken trainer might have saved it
    cadenza, bus = studio.cadenza, studio.cadenza.bus
    experiment = await cadenza.supervised_experiment(training_config())
    runs = [await cadenza.request_run(experiment) for _ in range(2)]
    weights = await bus.put_object(bus.adapters_bucket, "broken/attempt-1.zip", b"these are not weights")
    # and one that is a zip, unpacked in the worker's cache, but holds no adapter
    empty_zip = io.BytesIO()
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("README.txt", "no weights here")
    hollow = await bus.put_object(bus.adapters_bucket, "hollow/attempt-1.zip", empty_zip.getvalue())
    for run, adapter_id, ref in ((runs[0], "broken", weights), (runs[1], "hollow", hollow)):
        await bus.publish_many([
            AdapterSaved(run_id=run["id"], adapter_id=adapter_id, experiment_id=experiment["id"], name=adapter_id,
                         adapter=ref, base_model=studio.tiny_model, dataset_type="supervised", lora_config={},
                         final_loss=0.5),
            RunCompleted(run_id=run["id"], attempt=1, final_loss=0.5, steps=1, seconds=1.0, adapter_id=adapter_id),
        ])
        await cadenza.wait_for_run(run["id"])

    broken = await studio.request(adapter_id="broken")
    hollow = await studio.request(adapter_id="hollow")
    # a folder the server allows, with no model in it
    unknown_model = await studio.request(base_model=str(Path(studio.tiny_model).parent / "nonexistent"))
    failed = [await studio.wait_for_generation(g["id"]) for g in (broken, hollow, unknown_model)]

    assert [g["status"] for g in failed] == ["failed", "failed", "failed"]
    assert failed[0]["error"].startswith("the weights of adapter 'broken' are not an adapter zip"), failed[0]
    assert "<cache>/" in failed[1]["error"], failed[1]  # where the worker unpacked it, shown as a placeholder
    assert "base model folder '" in failed[2]["error"] and "nonexistent' does not exist" in failed[2]["error"], failed[2]
    assert not any(str(cadenza.settings.cache_dir) in g["error"] for g in failed), failed
    assert all(g["samples"] == [] for g in failed)
    for generation in failed:  # failed once, for good: not retried
        types = [s.envelope.type for s in await studio.history(generation["id"])]
        assert types == ["GenerationRequested", "GenerationStarted", "GenerationFailed"]
