"""The projector outlives a PostgreSQL that is stopped and started again, or hangs, while events
keep arriving: it retries with backoff, never ends, and catches up."""
from __future__ import annotations

import asyncio

from events.bus import Bus
from fault_injection import assert_equal_to_a_clean_rebuild, checkpoint, until
from mixed_history import datasets_and_experiments, losses, run_requests


async def keep_publishing(bus: Bus, run_id: str, stop: asyncio.Event) -> int:
    """Losses in batches until `stop`, fast enough to keep the projector folding; the last sequence."""
    step, last = 0, 0
    while not stop.is_set():
        last = max(await bus.publish_many(losses(run_id, 1, range(step, step + 200))))
        step += 200
        await asyncio.sleep(0.01)
    return last


async def test_the_registry_survives_postgres_stopped_and_started_mid_fold(
        fault_settings, bus, registry, restartable_postgres, caplog):
    url = fault_settings.database_url
    first = max(await bus.publish_many(datasets_and_experiments() + run_requests()))
    await until(lambda: _reached(url, first), "the first events folded")

    stop_publishing = asyncio.Event()
    publisher = asyncio.create_task(keep_publishing(bus, "waiting", stop_publishing))
    await asyncio.sleep(0.5)
    restartable_postgres.stop()  # while batches are being folded
    await asyncio.sleep(3)  # the projector fails and backs off meanwhile
    restartable_postgres.start()
    await asyncio.sleep(0.5)
    stop_publishing.set()
    last = await publisher

    await until(lambda: _reached(url, last), "the registry caught up after PostgreSQL came back")
    assert "reading again from the checkpoint" in caplog.text
    await assert_equal_to_a_clean_rebuild(fault_settings)


async def test_the_registry_survives_a_hung_postgres(fault_settings, bus, registry, restartable_postgres, caplog):
    url = fault_settings.database_url
    first = max(await bus.publish_many(datasets_and_experiments() + run_requests()))
    await until(lambda: _reached(url, first), "the first events folded")

    restartable_postgres.hang()
    try:
        last = max(await bus.publish_many(losses("waiting", 1, range(100))))
        # longer than the database timeout (2 s) twice over: commands and reconnects time out
        await asyncio.sleep(5)
    finally:
        restartable_postgres.resume()

    await until(lambda: _reached(url, last), "the registry caught up after PostgreSQL woke up")
    assert "TimeoutError" in caplog.text
    await assert_equal_to_a_clean_rebuild(fault_settings)


async def _reached(url: str, seq: int) -> bool:
    return await checkpoint(url) >= seq
