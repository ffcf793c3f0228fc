"""A user builds datasets: creates them, uploads clips or preference pairs, lists them, listens to
the stored audio and exports the JSONL the trainer reads."""
from __future__ import annotations

import hashlib
import json

import pytest

from events.base import ObjectRef


async def test_an_uploaded_clip_is_stored_with_what_was_read_from_the_file(api, client, observer_bus, tone):
    dataset = await api.dataset(name="lofi")
    assert dataset["kind"] == "supervised" and dataset["clip_count"] == 0
    audio = tone("FLAC", seconds=2.0, sample_rate=22_050, channels=2)

    response = await api.upload_clip(dataset["id"], audio, prompt="calm lofi piano", filename="piano.flac")

    assert response.status_code == 201, response.text
    clip = response.json()
    assert clip["dataset_id"] == dataset["id"] and clip["prompt"] == "calm lofi piano"
    assert (clip["format"], clip["sample_rate"], clip["channels"]) == ("FLAC", 22_050, 2)
    assert clip["duration_seconds"] == pytest.approx(2.0)
    assert (clip["filename"], clip["size"]) == ("piano.flac", len(audio))
    assert clip["sha256"] == hashlib.sha256(audio).hexdigest()
    assert clip["object_name"] == f"{clip['sha256']}.flac"

    # The event carries the object reference and the file's facts, never the bytes.
    history = await observer_bus.history("dataset", dataset["id"])
    assert [stored.envelope.type for stored in history] == ["DatasetCreated", "ClipAdded"]
    added = history[1].event
    assert (added.clip_id, added.audio.bucket, added.audio.name) == (clip["id"], observer_bus.clips_bucket, clip["object_name"])
    assert (added.audio.sha256, added.audio.size, added.audio.channels) == (clip["sha256"], len(audio), 2)

    detail = (await client.get(f"/api/datasets/{dataset['id']}")).json()
    assert [c["id"] for c in detail["clips"]] == [clip["id"]] and detail["pairs"] == []
    listed = (await client.get("/api/datasets")).json()
    assert [(d["id"], d["clip_count"]) for d in listed] == [(dataset["id"], 1)]

    played = await client.get(clip["audio_url"])
    assert played.status_code == 200
    assert played.content == audio
    assert played.headers["content-type"] == "audio/flac"


async def test_each_bad_upload_gets_its_status_and_message_and_changes_nothing(api, client, refused_unchanged, tone):
    supervised = await api.dataset("supervised")
    preference = await api.dataset("preference", name="likes")
    wav = tone("WAV")
    cases = [
        ("not audio", lambda: api.upload_clip(supervised["id"], b"this is a text file, not audio"),
         422, ["body", "file"], "not decodable audio"),
        ("an empty file", lambda: api.upload_clip(supervised["id"], b""), 422, ["body", "file"], "empty"),
        ("no frames", lambda: api.upload_clip(supervised["id"], tone("WAV", seconds=0)),
         422, ["body", "file"], "no frames"),
        ("a truncated flac", lambda: api.upload_clip(supervised["id"], tone("FLAC", seconds=3)[:2_000]),
         422, ["body", "file"], "not decodable audio"),
        ("no prompt", lambda: client.post(f"/api/datasets/{supervised['id']}/clips", files={"file": ("a.wav", wav)}),
         422, ["body", "prompt"], "Field required"),
        ("an unknown dataset", lambda: api.upload_clip("no-such-dataset", wav), 404, None, "dataset 'no-such-dataset' not found"),
        ("a pair to a supervised dataset", lambda: api.upload_pair(supervised["id"]), 409, None, "is a supervised dataset"),
        ("a clip to a preference dataset", lambda: api.upload_clip(preference["id"], wav), 409, None, "is a preference dataset"),
        ("a pair with a bad rejected file", lambda: api.upload_pair(preference["id"], rejected=b"garbage"),
         422, ["body", "rejected"], "rejected.ogg: not decodable audio"),
    ]
    for case, upload, status, loc, message in cases:
        await refused_unchanged(case, upload(), status, loc, message)


async def test_a_preference_pair_stores_both_files_as_clips_of_the_pair(api, client, tone):
    dataset = await api.dataset("preference", name="likes")
    chosen, rejected = tone("FLAC", frequency=440), tone("OGG", seconds=1.5, frequency=220)

    response = await api.upload_pair(dataset["id"], chosen, rejected, prompt="upbeat synthwave")

    assert response.status_code == 201, response.text
    pair = response.json()
    assert pair["prompt"] == "upbeat synthwave"
    assert (pair["chosen"]["format"], pair["rejected"]["format"]) == ("FLAC", "OGG")
    assert pair["rejected"]["duration_seconds"] == pytest.approx(1.5)
    assert (await client.get(pair["chosen"]["audio_url"])).content == chosen
    assert (await client.get(pair["rejected"]["audio_url"])).content == rejected

    detail = (await client.get(f"/api/datasets/{dataset['id']}")).json()
    assert (detail["pair_count"], detail["clip_count"], detail["clips"]) == (1, 2, [])
    assert [p["id"] for p in detail["pairs"]] == [pair["id"]]


async def test_the_export_is_the_jsonl_the_trainer_reads(api, client, observer_bus, tone):
    supervised = await api.dataset("supervised")
    clips = [(await api.upload_clip(supervised["id"], tone(frequency=f), prompt=f"tone {f}")).json()
             for f in (220, 330)]
    preference = await api.dataset("preference", name="likes")
    pair = (await api.upload_pair(preference["id"], prompt="brighter")).json()

    response = await client.get(f"/api/datasets/{supervised['id']}/export")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jsonl"
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert rows == [{"prompt": c["prompt"], "audio_path": c["object_name"]} for c in clips]
    # A path is the clip's object name in the clips bucket: fetched under that name, it is the audio.
    first = clips[0]
    ref = ObjectRef(bucket=observer_bus.clips_bucket, name=rows[0]["audio_path"], sha256=first["sha256"], size=first["size"])
    assert await observer_bus.get_object(ref) == (await client.get(first["audio_url"])).content

    rows = [json.loads(line) for line in (await client.get(f"/api/datasets/{preference['id']}/export")).text.splitlines()]
    assert rows == [{"prompt": "brighter", "chosen_path": pair["chosen"]["object_name"],
                     "rejected_path": pair["rejected"]["object_name"]}]


async def test_a_removed_clip_or_pair_leaves_the_dataset_and_its_export_and_stays_in_the_history(
        api, client, observer_bus):
    supervised, preference = await api.dataset("supervised"), await api.dataset("preference", name="likes")
    kept, wrong = [(await api.upload_clip(supervised["id"], prompt=prompt)).json() for prompt in ("kept", "wrong")]
    pair = (await api.upload_pair(preference["id"])).json()
    refused = await client.delete(f"/api/datasets/{preference['id']}/clips/{pair['chosen']['id']}")
    assert refused.status_code == 409 and "takes pairs, not clips" in refused.json()["detail"]

    removed = await client.delete(f"/api/datasets/{supervised['id']}/clips/{wrong['id']}")
    assert (removed.status_code, removed.content) == (204, b"")
    # read-your-writes: the answer comes once the read models hold the removal
    detail = (await client.get(f"/api/datasets/{supervised['id']}")).json()
    assert (detail["clip_count"], [c["id"] for c in detail["clips"]]) == (1, [kept["id"]])
    export = (await client.get(f"/api/datasets/{supervised['id']}/export")).text.splitlines()
    assert [json.loads(line)["prompt"] for line in export] == ["kept"]
    assert (await client.get(wrong["audio_url"])).status_code == 404

    assert (await client.delete(f"/api/datasets/{preference['id']}/pairs/{pair['id']}")).status_code == 204
    detail = (await client.get(f"/api/datasets/{preference['id']}")).json()
    assert (detail["pair_count"], detail["clip_count"], detail["pairs"]) == (0, 0, [])

    history = await observer_bus.history("dataset", supervised["id"])
    assert [stored.envelope.type for stored in history] == ["DatasetCreated", "ClipAdded", "ClipAdded", "ClipRemoved"]
    assert history[-1].event.clip_id == wrong["id"]

    for path, kind, item in [
        (f"/api/datasets/{supervised['id']}/clips/{wrong['id']}", "clip", wrong["id"]),  # removed already
        (f"/api/datasets/{preference['id']}/pairs/{pair['id']}", "pair", pair["id"]),
        (f"/api/datasets/{supervised['id']}/clips/nope", "clip", "nope"),
        (f"/api/datasets/{preference['id']}/pairs/nope", "pair", "nope"),
        (f"/api/datasets/nope/clips/{kept['id']}", "dataset", "nope"),
    ]:
        response = await client.delete(path)
        assert (response.status_code, response.json()) == (404, {"detail": f"{kind} '{item}' not found"}), path
    # a clip is removed through its own dataset only
    other = await api.dataset("supervised", name="other")
    response = await client.delete(f"/api/datasets/{other['id']}/clips/{kept['id']}")
    assert response.status_code == 404, response.text
    assert (await client.get(f"/api/datasets/{supervised['id']}")).json()["clip_count"] == 1


async def test_unknown_ids_are_404_with_a_message(client):
    for path, kind in [("/api/datasets/nope", "dataset"), ("/api/datasets/nope/export", "dataset"),
                       ("/api/clips/nope/audio", "clip"), ("/api/experiments/nope", "experiment"),
                       ("/api/runs/nope", "run"), ("/api/runs/nope/metrics", "run"), ("/api/runs/nope/logs", "run"),
                       ("/api/runs/nope/events", "run"), ("/api/runs/nope/stream", "run"),
                       ("/api/adapters/nope", "adapter"), ("/api/adapters/nope/download", "adapter")]:
        response = await client.get(path)
        assert (response.status_code, response.json()) == (404, {"detail": f"{kind} 'nope' not found"}), path


async def test_the_public_contract_is_described_at_docs(client):
    assert (await client.get("/docs")).status_code == 200
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {path: sorted(paths[path]) for path in paths} == {
        "/api/datasets": ["get", "post"],
        "/api/datasets/{dataset_id}": ["get"],
        "/api/datasets/{dataset_id}/export": ["get"],
        "/api/datasets/{dataset_id}/clips": ["post"],
        "/api/datasets/{dataset_id}/pairs": ["post"],
        "/api/datasets/{dataset_id}/clips/{clip_id}": ["delete"],
        "/api/datasets/{dataset_id}/pairs/{pair_id}": ["delete"],
        "/api/clips/{clip_id}/audio": ["get"],
        "/api/experiments": ["get", "post"],
        "/api/experiments/{experiment_id}": ["get", "patch"],
        "/api/experiments/{experiment_id}/runs": ["post"],
        "/api/runs": ["get"],
        "/api/runs/{run_id}": ["get"],
        "/api/runs/{run_id}/metrics": ["get"],
        "/api/runs/{run_id}/logs": ["get"],
        "/api/runs/{run_id}/cancel": ["post"],
        "/api/runs/{run_id}/events": ["get"],
        "/api/runs/{run_id}/stream": ["get"],
        "/api/adapters": ["get"],
        "/api/adapters/{adapter_id}": ["get"],
        "/api/adapters/{adapter_id}/download": ["get"],
        "/api/dead-letters": ["get"],
        "/api/adapters/{adapter_id}/lineage": ["get"],
        "/api/datasets/preview": ["post"],
        "/api/preferences": ["post"],
        "/api/generations": ["get", "post"],
        "/api/generations/{generation_id}": ["get"],
        "/api/generations/{generation_id}/cancel": ["post"],
        "/api/samples": ["get"],
        "/api/samples/{sample_id}": ["get"],
        "/api/samples/{sample_id}/audio": ["get"],
        "/api/samples/{sample_id}/ratings": ["post"],
        "/api/samples/{sample_id}/tags": ["post"],
        "/api/samples/{sample_id}/tags/{tag}": ["delete"],
        "/api/samples/{sample_id}/favorite": ["delete", "put"],
        "/api/comparisons": ["get", "post"],
        "/api/comparisons/{comparison_id}": ["get"],
        "/api/comparisons/{comparison_id}/next": ["get"],
        "/api/comparisons/{comparison_id}/votes": ["post"],
        "/api/comparisons/{comparison_id}/results": ["get"],
    }
