"""The projector outlives a nats-server restart (pull subscriptions can die with the server)."""
from __future__ import annotations

import asyncio
from dataclasses import replace


from events.bus import Bus
from mixed_history import datasets_and_experiments, losses, run_requests
from services.registry.read_your_writes import wait_until_projected
from services.registry.projector import run_projector


async def publish_when_back(bus: Bus, events: list) -> int:
    for _ in range(100):
        try:
            return max(await bus.publish_many(events))
        except Exception:  # still reconnecting
            await asyncio.sleep(0.2)
    raise AssertionError("the restarted nats-server never took a publish")


async def test_the_projector_keeps_folding_after_nats_restarts(settings, db, restartable_nats, caplog):
    settings = replace(settings, nats_url=restartable_nats.url)
    await asyncio.sleep(0.3)  # the server's first start
    bus = await Bus.connect(settings.nats_url, settings.namespace)
    await bus.ensure()
    stop = asyncio.Event()
    projector = asyncio.create_task(run_projector(settings, stop))
    try:
        await wait_until_projected(db, max(await bus.publish_many(datasets_and_experiments() + run_requests())))

        restartable_nats.stop()
        await asyncio.sleep(1.5)  # the projector's fetch and checks fail meanwhile
        restartable_nats.start()
        last = await publish_when_back(bus, losses("waiting", 1, range(50)))

        await wait_until_projected(db, last, timeout=30)
        assert await db.fetchval("SELECT count(*) FROM run_metrics WHERE run_id = 'waiting'") == 50
        assert not projector.done()
        # the restart cost the projector its consumer: it noticed, and read on from the checkpoint
        assert "reading again from the checkpoint" in caplog.text
    finally:
        stop.set()
        await asyncio.wait_for(projector, timeout=15)
        await bus.close()
