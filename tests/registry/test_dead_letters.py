"""Events the projector cannot apply are parked as dead letters, in order, and folding goes on:
unknown types and versions, payloads that fail validation, values or references the read models
refuse. `rebuild` parks the same ones; `replay` applies a parked event once it can be applied."""
from __future__ import annotations

import json

import pytest

from events.base import Envelope
from events.bus import Bus
from events.catalogue import ClipAdded, DatasetCreated
from events.codec import encode
from mixed_history import audio, datasets_and_experiments, losses
from services.registry.dead_letters import ReplayFailed, list_dead_letters, replay
from services.registry.read_your_writes import wait_until_projected
from services.registry.rebuild import rebuild


async def store_raw(bus: Bus, subject: str, data: bytes) -> int:
    """Store bytes as another program (or an older Cadenza) could have: no validation on the way."""
    return (await bus.js.publish(f"{bus.subject_root}.{subject}", data, stream=bus.stream)).seq


def envelope_of(event, **changes) -> dict:
    return json.loads(encode(Envelope.wrap(event))) | changes


async def poisoned_history(bus: Bus) -> dict[int, tuple[str, str]]:
    """A good history with bad events between good ones; returns {seq: (type, words of the error)}
    of those that must be parked."""
    await bus.publish_many(datasets_and_experiments())
    bad = {}
    teleported = envelope_of(DatasetCreated(dataset_id="x", name="x", kind="supervised"), type="DatasetTeleported")
    seq = await store_raw(bus, "dataset.x.dataset_teleported", json.dumps(teleported).encode())
    bad[seq] = ("dataset_teleported", "unknown event type 'DatasetTeleported'")
    future = envelope_of(DatasetCreated(dataset_id="y", name="y", kind="supervised"), version=7)
    seq = await store_raw(bus, "dataset.y.dataset_created", json.dumps(future).encode())
    bad[seq] = ("dataset_created", "version 7 is newer than this code knows")
    seq = await store_raw(bus, "dataset.z.dataset_created", b"\xff not json at all")
    bad[seq] = ("dataset_created", "not an event envelope")
    invalid = envelope_of(DatasetCreated(dataset_id="w", name="w", kind="supervised"))
    invalid["payload"]["kind"] = "karaoke"
    seq = await store_raw(bus, "dataset.w.dataset_created", json.dumps(invalid).encode())
    bad[seq] = ("dataset_created", "kind: Input should be 'supervised' or 'preference'")
    [seq] = await bus.publish_many([DatasetCreated(dataset_id="nul", name="a\x00b", kind="supervised")])
    bad[seq] = ("DatasetCreated", "CharacterNotInRepertoire")
    # a clip of a dataset nobody created, and loss reports in between good ones in one batch
    orphan = ClipAdded(dataset_id="nowhere", clip_id="orphan", prompt="p", audio=audio("orphan"))
    [seq] = await bus.publish_many([orphan])
    bad[seq] = ("ClipAdded", "ForeignKeyViolation")
    sequences = await bus.publish_many([
        *losses("no-such-run", 1, range(2)), DatasetCreated(dataset_id="after", name="After", kind="supervised")])
    bad |= {seq: ("LossReported", "ForeignKeyViolation") for seq in sequences[:2]}
    return bad


async def test_the_projector_parks_what_it_cannot_apply_and_folds_the_rest(settings, bus, db, projector, digest):
    bad = await poisoned_history(bus)
    last = await bus.last_seq()

    await wait_until_projected(db, last)

    parked = await list_dead_letters(db)
    assert [letter.seq for letter in parked] == sorted(bad)
    for letter in parked:
        kind, words = bad[letter.seq]
        assert letter.type == kind and words in letter.error, (letter, kind, words)
    # everything else was folded, the events after the bad ones included
    names = dict(await db.fetch("SELECT id, name FROM datasets"))
    assert names == {"drums": "Drums", "pads": "Pads", "taste": "Taste", "after": "After"}
    assert await db.fetchval("SELECT count(*) FROM clips") == 24 + 16
    assert await db.fetchval("SELECT count(*) FROM experiments") == 2

    # a rebuild parks the same events and folds the same read models
    folded = {table: value for table, value in (await digest()).items() if table != "dead_letters"}
    assert await rebuild(settings) == last
    assert {table: value for table, value in (await digest()).items() if table != "dead_letters"} == folded
    assert [(letter.seq, letter.type, letter.error) for letter in await list_dead_letters(db)] == \
        [(letter.seq, letter.type, letter.error) for letter in parked]


async def test_a_parked_event_is_replayed_once_it_can_be_applied(bus, db, projector):
    orphan = ClipAdded(dataset_id="late", clip_id="early-clip", prompt="p", audio=audio("early-clip"))
    [orphan_seq] = await bus.publish_many([orphan])
    [nul_seq] = await bus.publish_many([DatasetCreated(dataset_id="nul", name="a\x00b", kind="supervised")])
    await wait_until_projected(db, nul_seq)
    assert [letter.seq for letter in await list_dead_letters(db)] == [orphan_seq, nul_seq]

    async with db.acquire() as conn:
        with pytest.raises(ReplayFailed, match=f"event {orphan_seq} still cannot be applied: ForeignKeyViolation"):
            await replay(conn, bus, orphan_seq)
        # the dataset it belongs to arrives: the clip applies now
        await wait_until_projected(db, max(await bus.publish_many([
            DatasetCreated(dataset_id="late", name="Late", kind="supervised")])))
        replayed = await replay(conn, bus, orphan_seq)
        with pytest.raises(ReplayFailed, match=f"no dead letter at sequence {orphan_seq}"):
            await replay(conn, bus, orphan_seq)
        with pytest.raises(ReplayFailed, match="CharacterNotInRepertoire"):
            await replay(conn, bus, nul_seq)

    assert (replayed.seq, replayed.type) == (orphan_seq, "ClipAdded")
    assert await db.fetchval("SELECT dataset_id FROM clips WHERE id = 'early-clip'") == "late"
    assert [letter.seq for letter in await list_dead_letters(db)] == [nul_seq]


async def test_readers_of_the_history_skip_what_they_cannot_read(bus):
    good = DatasetCreated(dataset_id="d", name="D", kind="supervised")
    first = await bus.publish(good)
    teleported = envelope_of(good, type="DatasetTeleported")
    await store_raw(bus, "dataset.d.dataset_teleported", json.dumps(teleported).encode())
    clip = ClipAdded(dataset_id="d", clip_id="c", prompt="p", audio=audio("c"))
    last = await bus.publish(clip)
    await store_raw(bus, "dataset.d.clip_added", b"{}")  # the history ends on an unreadable event

    history = await bus.history("dataset", "d")

    assert [(stored.seq, stored.event) for stored in history] == [(first, good), (last, clip)]
