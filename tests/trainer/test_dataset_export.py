"""Which rows a run trains on (pure logic over a dataset's stored history), and their export to the
model CLI's JSONL from the real stream and object store."""
from __future__ import annotations

import pytest

from events.base import AudioFile, Envelope
from events.reader import StoredEvent
from events.catalogue import ClipAdded, ClipRemoved, DatasetCreated, PreferencePairAdded, PreferencePairRemoved
from other_producer import add_clip_behind_the_apis_back
from services.trainer.export import DatasetUnavailable, ObjectCache, dataset_rows, export_dataset


def audio(sha: str, filename: str = "a.wav") -> AudioFile:
    return AudioFile(bucket="clips", name=f"{sha}.wav", sha256=sha * 64, size=10, filename=filename, format="WAV",
                     duration_seconds=1.0, sample_rate=32_000, channels=1)


def stored(seq: int, event) -> StoredEvent:
    return StoredEvent(seq=seq, subject=event.subject("cadenza"), envelope=Envelope.wrap(event), event=event)


HISTORY = [
    stored(1, DatasetCreated(dataset_id="d", name="d", kind="supervised")),
    stored(2, ClipAdded(dataset_id="d", clip_id="c1", prompt="one", audio=audio("a"))),
    stored(3, ClipAdded(dataset_id="d", clip_id="c2", prompt="two", audio=audio("b"))),
    # the run is requested at sequence 4
    stored(5, ClipAdded(dataset_id="d", clip_id="c3", prompt="three", audio=audio("c"))),
]


def test_a_run_trains_on_the_clips_its_dataset_held_when_it_was_requested():
    rows = dataset_rows(HISTORY, "supervised", up_to_seq=4)
    assert [(row["id"], row["prompt"]) for row in rows] == [("c1", "one"), ("c2", "two")]


def test_a_removal_leaves_the_row_out_of_runs_requested_after_it_only():
    removals = [
        stored(6, ClipRemoved(dataset_id="d", clip_id="c1")),
        # the run requested now, at sequence 7
        stored(8, ClipRemoved(dataset_id="d", clip_id="c2")),
        stored(9, ClipAdded(dataset_id="d", clip_id="c1", prompt="one", audio=audio("a"))),  # a retried add
    ]
    history = HISTORY + removals
    assert [row["id"] for row in dataset_rows(history, "supervised", up_to_seq=4)] == ["c1", "c2"]
    assert [row["id"] for row in dataset_rows(history, "supervised", up_to_seq=7)] == ["c2", "c3"]
    assert [row["id"] for row in dataset_rows(history, "supervised", up_to_seq=10)] == ["c3"]

    pairs = [
        stored(seq, PreferencePairAdded(dataset_id="d", pair_id=pair_id, prompt="p", chosen_clip_id=f"{pair_id}x",
                                        chosen=audio("a"), rejected_clip_id=f"{pair_id}y", rejected=audio("b")))
        for seq, pair_id in ((1, "p1"), (2, "p2"))
    ] + [stored(3, PreferencePairRemoved(dataset_id="d", pair_id="p1"))]
    assert [row["id"] for row in dataset_rows(pairs, "preference", up_to_seq=3)] == ["p1", "p2"]
    assert [row["id"] for row in dataset_rows(pairs, "preference", up_to_seq=4)] == ["p2"]


def test_a_preference_run_takes_the_pairs_with_chosen_before_rejected():
    pair = PreferencePairAdded(dataset_id="d", pair_id="p", prompt="synth", chosen_clip_id="x", chosen=audio("a"),
                               rejected_clip_id="y", rejected=audio("b"))
    [row] = dataset_rows([stored(2, pair)], "preference", up_to_seq=3)
    assert list(row["audio"]) == ["chosen_path", "rejected_path"]
    assert row["audio"]["chosen_path"].sha256 == "a" * 64


async def test_an_unreadable_clip_fails_the_export_naming_it_and_an_unknown_event_is_skipped(bus, tmp_path):
    await bus.publish(DatasetCreated(dataset_id="d", name="d", kind="supervised"))
    await add_clip_behind_the_apis_back(bus, "d", b"RIFF, not decoded by an export", "take.wav")
    # another producer's event of a type the trainer does not know: not part of the dataset
    await bus.js.publish(f"{bus.subject_root}.dataset.d.dataset_renamed", b'{"type": "DatasetRenamed"}', stream=bus.stream)
    cache = ObjectCache(bus, tmp_path / "objects")

    exported = await export_dataset(bus, cache, "d", "supervised", await bus.last_seq() + 1, tmp_path / "first")
    assert len(exported.read_text().splitlines()) == 1

    seq = (await bus.js.publish(f"{bus.subject_root}.dataset.d.clip_added", b'{"type": "ClipAdded"}', stream=bus.stream)).seq
    with pytest.raises(DatasetUnavailable, match=f"dataset d: event {seq} on .*clip_added cannot be read: not an event envelope"):
        await export_dataset(bus, cache, "d", "supervised", seq + 1, tmp_path / "second")
