"""Bad audio in a dataset fails the run with a cause the user can act on: the file, and what is wrong.

The API refuses undecodable uploads, so a corrupt file can only reach a dataset from another
producer on the stream (an older client, a script, a bug). The test plays that producer: it stores
garbage bytes in the clips bucket and publishes the `ClipAdded` for them with the Bus.
"""
from __future__ import annotations

import hashlib
import uuid

import pytest

from events.base import AudioFile
from events.catalogue import ClipAdded, DatasetCreated
from services.trainer.export import DatasetUnavailable, ObjectCache, export_dataset


async def add_clip_behind_the_apis_back(bus, dataset_id: str, data: bytes, filename: str) -> ClipAdded:
    ref = await bus.put_object(bus.clips_bucket, f"{hashlib.sha256(data).hexdigest()}.wav", data)
    audio = AudioFile(**ref.model_dump(), filename=filename, format="WAV", duration_seconds=1.0,
                      sample_rate=32_000, channels=1)
    event = ClipAdded(dataset_id=dataset_id, clip_id=str(uuid.uuid4()), prompt="broken take", audio=audio)
    await bus.publish(event)
    return event


async def test_a_corrupt_audio_file_fails_the_run_with_a_message_naming_the_file(cadenza, training_config):
    cadenza.start_trainer()
    experiment = await cadenza.supervised_experiment(training_config())
    broken = await add_clip_behind_the_apis_back(cadenza.bus, experiment["dataset_id"],
                                                 b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)), "broken-take.wav")

    run = await cadenza.wait_for_run((await cadenza.request_run(experiment))["id"])

    assert run["status"] == "failed"
    assert f"{broken.clip_id}-audio.wav" in run["error"] and "cannot decode audio" in run["error"], run["error"]
    # where the trainer keeps its files is not the client's business
    assert str(cadenza.settings.cache_dir) not in run["error"] and "<cache>/" in run["error"], run["error"]
    assert run["attempt"] == 1, "bad input is not retried"
    types = await cadenza.history_types(run["id"])
    assert types.count("RunStarted") == 1 and types[-1] == "RunFailed"
    assert "AdapterSaved" not in types


async def test_audio_that_no_longer_matches_its_checksum_fails_the_run_without_training(cadenza, training_config):
    cadenza.start_trainer()
    experiment = await cadenza.supervised_experiment(training_config())
    dataset = await cadenza.get(f"/api/datasets/{experiment['dataset_id']}")
    [clip] = dataset["clips"]
    await cadenza.bus.put_object(clip["bucket"], clip["object_name"], b"not the uploaded bytes")

    run = await cadenza.wait_for_run((await cadenza.request_run(experiment))["id"])

    assert run["status"] == "failed"
    assert run["error"].startswith("take-0.wav (row ") and "does not match its checksum" in run["error"], run["error"]
    assert await cadenza.history_types(run["id"]) == ["RunRequested", "RunStarted", "RunFailed"]


async def test_a_file_name_is_never_a_path_the_trainer_uses(cadenza, training_config, tone):
    cadenza.start_trainer()
    experiment = await cadenza.supervised_experiment(training_config())
    for hostile in ("..", "../../escape.wav", "/etc/passwd", "a/b"):
        await add_clip_behind_the_apis_back(cadenza.bus, experiment["dataset_id"], tone(frequency=300 + len(hostile)),
                                            hostile)

    run = await cadenza.wait_for_run((await cadenza.request_run(experiment))["id"])

    assert run["status"] == "completed", run["error"]
    assert run["dataset_rows"] == 5


async def test_an_unreadable_clip_fails_the_export_naming_it_and_an_unknown_event_is_skipped(bus, tone, tmp_path):
    await bus.publish(DatasetCreated(dataset_id="d", name="d", kind="supervised"))
    await add_clip_behind_the_apis_back(bus, "d", tone(), "take.wav")
    # another producer's event of a type the trainer does not know: not part of the dataset
    await bus.js.publish(f"{bus.subject_root}.dataset.d.dataset_renamed", b'{"type": "DatasetRenamed"}', stream=bus.stream)
    cache = ObjectCache(bus, tmp_path / "objects")

    exported = await export_dataset(bus, cache, "d", "supervised", await bus.last_seq() + 1, tmp_path / "first")
    assert exported.rows == 1

    seq = (await bus.js.publish(f"{bus.subject_root}.dataset.d.clip_added", b'{"type": "ClipAdded"}', stream=bus.stream)).seq
    with pytest.raises(DatasetUnavailable, match=f"dataset d: event {seq} on .*clip_added cannot be read: not an event envelope"):
        await export_dataset(bus, cache, "d", "supervised", seq + 1, tmp_path / "second")
