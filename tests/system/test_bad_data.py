"""Bad audio in a dataset fails the run with a cause the user can act on: the file, and what is wrong.

The API refuses undecodable uploads, so a corrupt file can only reach a dataset from another
producer on the stream (an older client, a script, a bug). The test plays that producer: it stores
garbage bytes in the clips bucket and publishes the `ClipAdded` for them with the Bus.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from other_producer import add_clip_behind_the_apis_back

REPOSITORY = Path(__file__).resolve().parents[2]


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
    # an administrator purged its chunks: what is left (nothing) is not the uploaded bytes
    stored = await (await cadenza.bus.js.object_store(clip["bucket"])).get_info(clip["object_name"])
    await cadenza.bus.js.purge_stream(f"OBJ_{clip['bucket']}", subject=f"$O.{clip['bucket']}.C.{stored.nuid}")

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


async def test_an_unexpected_error_in_training_shows_its_traceback_without_the_servers_folders(cadenza,
                                                                                               training_config):
    # The feature cache's folder is a file: the training process fails where no check foresaw it.
    cadenza.settings.cache_dir.mkdir(parents=True, exist_ok=True)
    (cadenza.settings.cache_dir / "features").write_text("not a folder")
    cadenza.start_trainer()
    experiment = await cadenza.supervised_experiment(training_config())

    run = await cadenza.wait_for_run((await cadenza.request_run(experiment))["id"])

    assert run["status"] == "failed"
    log = "\n".join(line["line"] for line in await cadenza.get(f"/api/runs/{run['id']}/logs"))
    assert "Traceback (most recent call last):" in log, log
    # still useful: each file relative to its placeholder, with its line
    assert re.search(r'File "<source>/model/training/features\.py", line \d+', log), log
    assert re.search(r'File "<stdlib>/pathlib[^"]*\.py", line \d+', log), log
    for folder in (sys.prefix, sys.base_prefix, str(REPOSITORY), str(cadenza.settings.cache_dir)):
        assert folder not in log and folder not in run["error"], (folder, log, run["error"])
