"""The stream as publishers and readers see it, against a real nats-server."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from nats.js import api
from nats.js.errors import APIError, NoStreamResponseError, ObjectNotFoundError

from events.bus import DUPLICATE_WINDOW_SECONDS, Bus
from events.catalogue import ClipRemoved, DatasetCreated, LossReported, RunRequested
from events.base import ObjectRef

V1_FIXTURE = Path(__file__).parent / "fixtures" / "run_requested_v1.json"


def loss(step: int, run_id: str = "r1") -> LossReported:
    return LossReported(run_id=run_id, attempt=1, step=step, epoch=0.0, loss=1.0 / (step + 1))


async def stored_messages(bus: Bus) -> int:
    return (await bus.js.stream_info(bus.stream)).state.messages


async def test_the_stream_is_an_audit_log(bus: Bus):
    await bus.ensure()  # a second service starting declares the same things again, harmlessly

    config = (await bus.js.stream_info(bus.stream)).config
    assert config.subjects == [f"{bus.subject_root}.>"]
    assert config.retention == api.RetentionPolicy.LIMITS
    assert config.storage == api.StorageType.FILE
    assert config.deny_delete and config.deny_purge
    assert config.duplicate_window == DUPLICATE_WINDOW_SECONDS
    for bucket in (bus.clips_bucket, bus.adapters_bucket, bus.checkpoints_bucket):
        assert (await bus.js.stream_info(f"OBJ_{bucket}")).config.storage == api.StorageType.FILE


async def test_a_retried_publish_is_stored_once(bus: Bus):
    created = DatasetCreated(dataset_id="d1", name="drums", kind="supervised")

    first = await bus.publish(created)
    retried = await bus.publish(created)

    assert retried == first
    assert await stored_messages(bus) == 1
    message = await bus.js.get_msg(bus.stream, first)
    assert message.headers["Nats-Msg-Id"] == created.idempotency_key()
    assert message.subject == f"{bus.subject_root}.dataset.d1.dataset_created"


async def test_publish_many_keeps_order_and_drops_duplicates(bus: Bus):
    sequences = await bus.publish_many([loss(step) for step in range(2_500)])
    assert sequences == list(range(1, 2_501))

    again = await bus.publish_many([loss(7), loss(2_500), loss(3)])

    assert again == [8, 2_501, 4]
    assert await stored_messages(bus) == 2_501


async def test_a_request_finds_what_it_published_under_later_messages_on_the_subject(bus: Bus):
    removals = [ClipRemoved(dataset_id="d1", clip_id=f"c{index}") for index in range(3)]
    [first] = await bus.publish_many(removals[:1], request="first")
    await bus.publish_many(removals[1:2], request="second")
    await bus.publish_many(removals[2:])
    subject = removals[0].subject(bus.subject_root)

    assert (await bus.request_message(subject, "first")).seq == first
    assert (await bus.request_message(subject, "second")).headers["Nats-Msg-Id"] == removals[1].idempotency_key()
    assert await bus.request_message(subject, "third") is None
    assert await bus.request_message(f"{bus.subject_root}.dataset.d2.clip_removed", "first") is None
    assert await bus.stored_seq(removals[0]) is None  # it looks at the subject's last message only


async def test_a_publish_no_stream_accepts_raises(bus: Bus):
    elsewhere = await Bus.connect(bus.nc.connected_url.geturl(), "nowhere")  # no stream was declared
    try:
        with pytest.raises(NoStreamResponseError):
            await elsewhere.publish(loss(1))
        wrong_stream = Bus(bus.nc, bus.subject_root)
        wrong_stream.stream = "NOT_" + bus.stream
        with pytest.raises(APIError, match="expected stream does not match"):
            await wrong_stream.publish(loss(1))
        with pytest.raises(APIError, match="expected stream does not match"):
            await wrong_stream.publish_many([loss(2)])
    finally:
        await elsewhere.close()
    assert await stored_messages(bus) == 0


async def test_history_reads_one_aggregate_in_order_and_upcasts(bus: Bus):
    await bus.publish_many([loss(0, "r1"), loss(0, "r2"), loss(1, "r1")])
    # a v1 request stored by an older Cadenza
    await bus.js.publish(f"{bus.subject_root}.run.run-v1.run_requested", V1_FIXTURE.read_bytes())

    r1 = await bus.history("run", "r1")
    old = await bus.history("run", "run-v1")

    assert [(stored.seq, stored.event.step) for stored in r1] == [(1, 0), (3, 1)]
    assert isinstance(old[0].event, RunRequested) and old[0].event.config.num_epochs == 5
    assert await bus.history("run", "never-requested") == []


async def test_events_reads_from_a_sequence_to_the_end(bus: Bus):
    await bus.publish_many([loss(step) for step in range(10)])

    assert [stored.seq async for stored in bus.events(start_seq=4)] == list(range(4, 11))
    assert [stored.seq async for stored in bus.events(start_seq=11)] == []


async def test_objects_round_trip_and_are_checked(bus: Bus, tmp_path: Path):
    audio = bytes(range(256)) * 1_000

    ref = await bus.put_object(bus.clips_bucket, "clip-1", audio)

    assert ref == ObjectRef(bucket=bus.clips_bucket, name="clip-1", sha256=hashlib.sha256(audio).hexdigest(), size=len(audio))
    assert await bus.get_object(ref) == audio
    forged = ref.model_copy(update={"sha256": hashlib.sha256(b"other").hexdigest()})
    with pytest.raises(ObjectNotFoundError):  # a reference reads only the bytes it was made for
        await bus.get_object(forged)


async def test_files_stream_through_the_object_store(bus: Bus, tmp_path: Path):
    weights = tmp_path / "adapter.safetensors"
    weights.write_bytes(hashlib.sha256(b"seed").digest() * 100_000)  # 3.2 MB: many chunks

    ref = await bus.put_file(bus.adapters_bucket, "adapter-1", weights)
    stored = await (await bus.js.object_store(bus.adapters_bucket)).get_info("adapter-1")
    # an upload retried after its answer was lost keeps the object: replacing it needs a purge
    assert await bus.put_file(bus.adapters_bucket, "adapter-1", weights) == ref
    assert (await (await bus.js.object_store(bus.adapters_bucket)).get_info("adapter-1")).nuid == stored.nuid
    copy = await bus.get_file(ref, tmp_path / "copy")

    assert ref.size == weights.stat().st_size
    assert copy.read_bytes() == weights.read_bytes()
    forged = ref.model_copy(update={"size": ref.size + 1})
    with pytest.raises(ObjectNotFoundError):
        await bus.get_file(forged, tmp_path / "forged")
    with pytest.raises(ObjectNotFoundError):
        await bus.get_file(ref.model_copy(update={"name": "never-uploaded"}), tmp_path / "missing")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["adapter.safetensors", "copy"]
