"""A NATS outage longer than a publish's ack wait, the server stopped or hung, costs a training
attempt neither events nor the attempt itself: the outbox keeps its events and publishes them once
the server is back, each once (a hung server receives the unanswered publishes and their retries)."""
from __future__ import annotations

import asyncio

import pytest

import events.bus
from events.bus import Bus
from events.catalogue import LossReported
from services.trainer.outbox import RunOutbox


@pytest.mark.parametrize("outage", ["stopped", "hung"])
async def test_the_outbox_keeps_flushing_across_a_nats_outage(settings, restartable_nats, outage):
    away, back = {"stopped": (restartable_nats.stop, restartable_nats.start),
                  "hung": (restartable_nats.hang, restartable_nats.resume)}[outage]
    await asyncio.sleep(0.3)  # the server's first start
    bus = await Bus.connect(restartable_nats.url, settings.namespace)
    try:
        await bus.ensure()
        outbox = RunOutbox(bus, "r", 1, max_delay=0.2)
        async with outbox.flushing():
            for step in range(10):
                outbox.add_loss(LossReported(run_id="r", attempt=1, step=step, epoch=0, loss=1.0))
                await asyncio.sleep(0.1)
            away()
            for step in range(10, 20):  # reported while the server is away, longer than an ack wait
                outbox.add_loss(LossReported(run_id="r", attempt=1, step=step, epoch=0, loss=1.0))
                await asyncio.sleep((events.bus.REQUEST_TIMEOUT + 2) / 10)
            back()
            for step in range(20, 30):
                outbox.add_loss(LossReported(run_id="r", attempt=1, step=step, epoch=0, loss=1.0))
                await asyncio.sleep(0.1)
        steps = sorted(stored.event.step for stored in await bus.history("run", "r"))
        assert steps == list(range(30))
    finally:
        await bus.close()
