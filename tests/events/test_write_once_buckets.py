"""Object buckets on a real nats-server: whoever may write a bucket can add to it but neither erase
nor hide what is stored there; a reference reads the bytes it was made for."""
from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import pytest
from nats.js import api
from nats.js.errors import ObjectNotFoundError, ServerError

from events import objects
from events.base import ObjectRef
from events.bus import Bus
from events.objects import ObjectCorrupted
from services.settings import Settings

AUDIO = bytes(range(256)) * 4_000  # 1 MB: two chunks


def metadata_subject(bucket: str, name: str) -> str:
    return f"$O.{bucket}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"


async def stored_info(bus: Bus, bucket: str, name: str) -> api.ObjectInfo:
    """The object's metadata as `nats object info` shows it (the last one published)."""
    return await (await bus.js.object_store(bucket)).get_info(name, show_deleted=True)


async def messages(bus: Bus, bucket: str) -> int:
    return (await bus.js.stream_info(f"OBJ_{bucket}")).state.messages


async def test_a_writer_can_neither_erase_nor_hide_a_stored_object(bus: Bus, tmp_path: Path):
    ref = await bus.put_object(bus.clips_bucket, "clip.wav", AUDIO)
    info = await stored_info(bus, bus.clips_bucket, "clip.wav")
    chunks, metadata = f"$O.{bus.clips_bucket}.C.{info.nuid}", metadata_subject(bus.clips_bucket, "clip.wav")

    # a rollup would drop every message before it on the subject: the bucket refuses it
    for subject in (chunks, metadata):
        with pytest.raises(ServerError, match="rollup not permitted"):
            await bus.js.publish(subject, b"", headers={"Nats-Rollup": "sub"})
    # what a writer may publish: a "deleted" marker (all a delete can say without a purge), more
    # chunks, metadata that is not metadata, and an object of that name made of other chunks
    await bus.js.publish(metadata, json.dumps({**info.as_dict(), "deleted": True, "size": 0, "digest": ""}).encode())
    await bus.js.publish(chunks, b"appended")
    await bus.js.publish(metadata, b"not metadata")
    forged = await bus.put_object(bus.clips_bucket, "other.wav", b"forged bytes")
    forged_info = await stored_info(bus, bus.clips_bucket, "other.wav")
    await bus.js.publish(metadata, json.dumps({**forged_info.as_dict(), "name": "clip.wav"}).encode())

    assert (await stored_info(bus, bus.clips_bucket, "clip.wav")).nuid == forged_info.nuid  # what `nats object` shows
    assert await bus.get_object(ref) == AUDIO
    assert (await bus.get_file(ref, tmp_path / "clip.wav")).read_bytes() == AUDIO
    assert await bus.get_object(forged) == b"forged bytes"


async def test_other_bytes_under_a_stored_name_are_stored_beside_them(bus: Bus):
    first = await bus.put_object(bus.samples_bucket, "sample.wav", AUDIO)
    stored = await messages(bus, bus.samples_bucket)

    assert await bus.put_object(bus.samples_bucket, "sample.wav", AUDIO) == first  # a retry stores nothing
    assert await messages(bus, bus.samples_bucket) == stored
    second = await objects.put(bus.js, bus.samples_bucket, "sample.wav", io.BytesIO(b"other" * 1_000), max_payload=1_000)

    assert (await stored_info(bus, bus.samples_bucket, "sample.wav")).chunks == 5  # the server's limit sets chunks
    assert (await bus.get_object(first), await bus.get_object(second)) == (AUDIO, b"other" * 1_000)


async def test_deleting_purges_every_object_of_the_name_and_nothing_else(bus: Bus):
    refs = [await bus.put_object(bus.checkpoints_bucket, "step-1.tar", data) for data in (b"one", b"two")]
    kept = await bus.put_object(bus.checkpoints_bucket, "step-2.tar", b"three")

    await bus.delete_object(refs[0])
    await bus.delete_object(refs[0])  # what is gone is no error: deleting is retried after failures

    for ref in refs:
        with pytest.raises(ObjectNotFoundError):
            await bus.get_object(ref)
    assert await bus.get_object(kept) == b"three"
    assert await messages(bus, bus.checkpoints_bucket) == 2  # its chunk and its metadata


async def test_an_object_whose_chunks_were_purged_reads_as_corrupted_and_leaves_no_file(bus: Bus, tmp_path: Path):
    ref = await bus.put_object(bus.adapters_bucket, "adapter.zip", AUDIO)
    nuid = (await stored_info(bus, bus.adapters_bucket, "adapter.zip")).nuid
    await bus.js.purge_stream(f"OBJ_{bus.adapters_bucket}", subject=f"$O.{bus.adapters_bucket}.C.{nuid}")

    with pytest.raises(ObjectCorrupted, match="got 0 bytes"):
        await bus.get_object(ref)
    with pytest.raises(ObjectCorrupted):
        await bus.get_file(ref, tmp_path / "adapter.zip")
    assert list(tmp_path.iterdir()) == []


async def test_a_reference_to_bytes_never_stored_is_not_found(bus: Bus):
    ref = await bus.put_object(bus.adapters_bucket, "adapter.zip", b"weights")

    for missing in (ref.model_copy(update={"name": "never-stored.zip"}),
                    ref.model_copy(update={"sha256": hashlib.sha256(b"other").hexdigest()})):
        with pytest.raises(ObjectNotFoundError):
            await bus.get_object(missing)


async def test_an_installation_with_nats_object_stores_is_made_write_once(settings: Settings):
    """Buckets declared as NATS object stores (rollups allowed) before: declaring them again
    refuses rollups from then on, and what they hold reads as before."""
    bus = await Bus.connect(settings.nats_url, settings.namespace)
    try:
        store = await bus.js.create_object_store(bus.adapters_bucket, config=api.ObjectStoreConfig(
            storage=api.StorageType.FILE))
        await store.put("adapter.zip", AUDIO)
        ref = ObjectRef(bucket=bus.adapters_bucket, name="adapter.zip", sha256=hashlib.sha256(AUDIO).hexdigest(),
                        size=len(AUDIO))

        await bus.ensure()

        assert (await bus.js.stream_info(f"OBJ_{bus.adapters_bucket}")).config.allow_rollup_hdrs is False
        assert await bus.get_object(ref) == AUDIO
    finally:
        await bus.close()
