"""The projector outlives a nats-server restart (pull subscriptions can die with the server)."""
from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from events.bus import Bus
from mixed_history import datasets_and_experiments, losses, run_requests
from services.embedded import nats_server_binary
from services.registry.progress import wait_until_projected
from services.registry.projector import run_projector


class RestartableNats:
    """A private nats-server that comes back on the same port with the same JetStream store."""

    def __init__(self, store: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.store = store
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def restartable_nats(tmp_path: Path) -> Iterator[RestartableNats]:
    server = RestartableNats(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


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
