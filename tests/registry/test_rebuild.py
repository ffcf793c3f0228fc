"""`cadenza rebuild`: the read models are a pure function of the stream."""
from __future__ import annotations

import asyncio

from mixed_history import losses, mixed_history
from services.registry.read_your_writes import wait_until_projected
from services.registry.rebuild import rebuild


async def test_rebuilt_read_models_equal_the_incrementally_built_ones(settings, bus, db, projector, digest, store_again):
    history = mixed_history()
    assert len(history) > 300
    for start in range(0, len(history), 37):  # published in many small commands, as the API would
        last = max(await bus.publish_many(history[start:start + 37]))
    last = await store_again(history[-1])  # and one duplicate stored after the dedup window
    await wait_until_projected(db, last)
    incremental = await digest()
    assert incremental["runs"][0] == 6 and incremental["projector_checkpoint"][0] == 1

    folded = await rebuild(settings)

    assert folded == last
    assert await digest() == incremental


async def test_a_rebuild_while_the_projector_runs_loses_nothing(settings, bus, db, projector, digest):
    await bus.publish_many(mixed_history())

    async def keep_reporting() -> int:
        last = 0
        for step in range(100, 400, 50):
            last = max(await bus.publish_many(losses("resumed", 2, range(step, step + 50))))
            await asyncio.sleep(0.01)
        return last

    folded, last = await asyncio.gather(rebuild(settings), keep_reporting())
    await wait_until_projected(db, last)
    assert 0 < folded <= last
    concurrent = await digest()

    assert await rebuild(settings) == last
    assert await digest() == concurrent
    assert await db.fetchval("SELECT count(*) FROM run_metrics WHERE run_id = 'resumed' AND split = 'train'") == 60 + 300
