"""`cadenza events --follow` goes on printing after the nats-server restarts."""
from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import replace
from pathlib import Path

from events.bus import Bus
from events.catalogue import DatasetCreated

REPOSITORY = Path(__file__).resolve().parents[2]


async def publish_when_back(bus: Bus, event) -> None:
    for _ in range(300):
        try:
            await bus.publish(event)
            return
        except Exception:  # still reconnecting
            await asyncio.sleep(0.2)
    raise AssertionError("the restarted nats-server never took a publish")


async def read_until(stream: asyncio.StreamReader, text: str) -> None:
    while text.encode() not in await asyncio.wait_for(stream.readline(), 120):
        pass


async def test_events_follow_survives_a_nats_restart(settings, restartable_nats):
    settings = replace(settings, nats_url=restartable_nats.url)
    await asyncio.sleep(0.3)  # the server's first start
    bus = await Bus.connect(settings.nats_url, settings.namespace)
    await bus.ensure()
    env = {**os.environ, "NATS_URL": settings.nats_url, "CADENZA_NAMESPACE": settings.namespace}
    follower = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from services.cli import main; sys.exit(main(['events', '--follow']))",
        cwd=REPOSITORY, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        await bus.publish(DatasetCreated(dataset_id="before", name="before", kind="supervised"))
        await read_until(follower.stdout, '"before"')

        restartable_nats.stop()
        await asyncio.sleep(1.5)  # the follower's reader fails meanwhile
        restartable_nats.start()
        await publish_when_back(bus, DatasetCreated(dataset_id="after", name="after", kind="supervised"))

        await read_until(follower.stdout, '"after"')
        assert follower.returncode is None
    finally:
        follower.terminate()
        await follower.wait()
        await bus.close()
