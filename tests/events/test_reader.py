"""The stream reader (an ephemeral pull consumer it asks for messages itself), against a real
nats-server."""
from __future__ import annotations

import asyncio
import time

import nats.errors
import pytest

from events.bus import Bus
from events.catalogue import LossReported
from events.reader import StoredEvent, UnreadableEvent


def loss(step: int) -> LossReported:
    return LossReported(run_id="r1", attempt=1, step=step, epoch=0.0, loss=1.0 / (step + 1))


async def test_batches_come_in_stream_order_and_never_above_the_size_asked(bus: Bus):
    await bus.publish_many([loss(step) for step in range(5)])
    await bus.js.publish(f"{bus.subject_root}.run.r1.loss_reported", b"not json")
    reader = await bus.reader(start_seq=2)
    try:
        batches = [await reader.next_messages(2, wait=0.5) for _ in range(3)]
        started = time.monotonic()
        assert await reader.next_messages(2, wait=0.5) == []
        waited = time.monotonic() - started
    finally:
        await reader.close()

    assert [[item.seq for item in batch] for batch in batches] == [[2, 3], [4, 5], [6]]
    assert all(isinstance(item, StoredEvent) for item in batches[0] + batches[1])
    assert isinstance(batches[2][0], UnreadableEvent) and batches[2][0].type == "loss_reported"
    assert reader.pending == 0
    assert 0.4 < waited < 2.0


async def test_a_caught_up_reader_gets_a_new_event_at_once(bus: Bus):
    reader = await bus.reader()
    try:
        waiting = asyncio.create_task(reader.next_messages(1_000, wait=10))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        seq = await bus.publish(loss(0))
        batch = await asyncio.wait_for(waiting, 10)
        delay = time.monotonic() - started
    finally:
        await reader.close()

    assert [item.seq for item in batch] == [seq]
    assert delay < 1.0  # not the 10 s the batch of 1,000 could have waited to fill


async def test_a_reader_whose_consumer_is_gone_fails_instead_of_waiting(bus: Bus):
    reader = await bus.reader()
    try:
        waiting = asyncio.create_task(reader.next_messages(1_000, wait=10))
        await asyncio.sleep(0.2)
        [consumer] = await bus.js.consumers_info(bus.stream)
        await bus.js.delete_consumer(bus.stream, consumer.name)
        started = time.monotonic()
        with pytest.raises(nats.errors.Error):
            await asyncio.wait_for(waiting, 10)
        assert time.monotonic() - started < 2.0
        with pytest.raises(nats.errors.Error):
            await reader.next_messages(1_000, wait=10)
    finally:
        await reader.close()


async def test_a_fault_while_decoding_reaches_the_caller(bus: Bus, monkeypatch):
    def broken_decode(data: bytes, subject: str):
        raise RuntimeError("a bug in decoding")

    await bus.publish(loss(0))
    monkeypatch.setattr("events.reader.decode", broken_decode)
    reader = await bus.reader()
    try:
        with pytest.raises(RuntimeError, match="a bug in decoding"):
            await reader.next_messages(1_000, wait=2)
    finally:
        await reader.close()
