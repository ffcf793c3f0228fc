"""How fast the registry projector folds LossReported events into run_metrics, next to the two floors
it cannot beat, all measured in one run on the same 100,000 stored events:

  consume+ack   nats-py pulls the messages (batches of 1,000) and acks each one, doing nothing else
  consume       the same without acks (an ack-less pull consumer, like the projector's reader)
  COPY          asyncpg COPYs the same rows into a table shaped like run_metrics
  projector     run_projector from sequence 1 until the checkpoint reaches the end of the stream

and, with the projector caught up and running, what an API command waits for: one publish, then
wait_until_projected, 200 times one after the other (median and 95th percentile).

Usage: python bench/projector.py [--events N]. Uses NATS_URL / DATABASE_URL (an admin URL: a
database is created and dropped) when set, else private servers under a temporary folder.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from nats.js import api

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from events.bus import Bus  # noqa: E402
from events.catalogue import DatasetCreated, ExperimentCreated, LossReported, RunRequested  # noqa: E402
from events.subjects import subject_filter  # noqa: E402
from services.embedded import start_missing  # noqa: E402
from services.registry.migrate import migrate  # noqa: E402
from services.registry.read_your_writes import wait_until_projected  # noqa: E402
from services.registry.projector import run_projector  # noqa: E402
from services.settings import Settings  # noqa: E402

RUN = "bench-run"


def history(count: int) -> tuple[list, list[LossReported]]:
    setup = [
        DatasetCreated(dataset_id="bench", name="bench", kind="supervised"),
        ExperimentCreated(experiment_id="bench", name="bench", dataset_id="bench", config={}),
        RunRequested(run_id=RUN, experiment_id="bench", dataset_id="bench", name="bench",
                     config={"dataset_type": "supervised", "num_epochs": 1}),
    ]
    reports = [LossReported(run_id=RUN, attempt=1, step=step, epoch=step / 1000, loss=1.0 / (step + 1),
                            learning_rate=1e-4, grad_norm=0.5) for step in range(count)]
    return setup, reports


async def consume(bus: Bus, ack: bool) -> int:
    config = api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT if ack else api.AckPolicy.NONE,
                                deliver_policy=api.DeliverPolicy.ALL, max_ack_pending=-1)
    subscription = await bus.js.pull_subscribe(subject_filter(bus.subject_root), stream=bus.stream, config=config)
    total = (await subscription.consumer_info()).num_pending
    received = 0
    while received < total:
        messages = await subscription.fetch(1_000, timeout=5)
        received += len(messages)
        if ack:
            for message in messages:
                await message.ack()
    await subscription.unsubscribe()
    return received


async def copy_rows(pool: asyncpg.Pool, reports: list[LossReported]) -> int:
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE bench_metrics (LIKE run_metrics INCLUDING ALL)")
        at = datetime.now(timezone.utc)
        rows = [(e.run_id, e.split, e.step, e.attempt, e.epoch, e.loss, e.learning_rate, e.grad_norm, "{}", at)
                for e in reports]
        started = time.perf_counter()
        await conn.copy_records_to_table("bench_metrics", records=rows)
        elapsed = time.perf_counter() - started
        await conn.execute("DROP TABLE bench_metrics")
    return elapsed


async def project(settings: Settings, pool: asyncpg.Pool, last: int) -> None:
    stop = asyncio.Event()
    projector = asyncio.create_task(run_projector(settings, stop))
    await wait_until_projected(pool, last, timeout=600)
    stop.set()
    await projector


async def command_latency(settings: Settings, bus: Bus, pool: asyncpg.Pool, count: int = 200) -> list[float]:
    stop = asyncio.Event()
    projector = asyncio.create_task(run_projector(settings, stop))
    latencies = []
    for step in range(count):
        started = time.perf_counter()
        seq = await bus.publish(LossReported(run_id=RUN, attempt=2, step=step, epoch=0.0, loss=1.0))
        await wait_until_projected(pool, seq)
        latencies.append(time.perf_counter() - started)
    stop.set()
    await projector
    return sorted(latencies)


async def timed(coroutine) -> float:
    started = time.perf_counter()
    await coroutine
    return time.perf_counter() - started


async def bench(nats_url: str, admin_url: str, count: int) -> None:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    database = f"cadenza_{namespace}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    settings = Settings(nats_url=nats_url, database_url=urlunsplit(urlsplit(admin_url)._replace(path=f"/{database}")),
                        namespace=namespace)
    bus = await Bus.connect(nats_url, namespace)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        await bus.ensure()
        await migrate(pool)
        setup, reports = history(count)
        await bus.publish_many(setup)
        publish_seconds = await timed(bus.publish_many(reports))
        last = await bus.last_seq()
        messages = last  # the floors read the whole stream, as the projector does

        rates = {"projector": messages / await timed(project(settings, pool, last))}
        rates["consume+ack"] = messages / await timed(consume(bus, ack=True))
        rates["consume"] = messages / await timed(consume(bus, ack=False))
        rates["COPY"] = count / await copy_rows(pool, reports)
        latencies = await command_latency(settings, bus, pool)

        print(f"{count:,} LossReported events ({messages:,} messages on the stream); "
              f"publish_many: {count / publish_seconds:,.0f} events/s")
        for name in ("consume+ack", "consume", "COPY", "projector"):
            print(f"  {name:<12} {rates[name]:>10,.0f} events/s")
        floors = {name: rates[name] for name in ("consume+ack", "consume", "COPY")}
        lowest = min(floors, key=floors.get)
        print(f"projector / lowest floor ({lowest}): {rates['projector'] / floors[lowest]:.2f}")
        print(f"projector / consume (no acks): {rates['projector'] / rates['consume']:.2f}")
        print(f"publish + wait_until_projected, one command at a time: median "
              f"{latencies[len(latencies) // 2] * 1000:.1f} ms, 95th percentile {latencies[int(len(latencies) * 0.95)] * 1000:.1f} ms")
    finally:
        await pool.close()
        for info in await bus.js.streams_info():
            if namespace in info.config.name.lower():
                await bus.js.delete_stream(info.config.name)
        await bus.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    with ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="cadenza-bench-"))
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        nats_url, database_url = start_missing(
            os.environ.get("NATS_URL", ""), os.environ.get("DATABASE_URL", ""), data_dir, stack)
        asyncio.run(bench(nats_url, database_url, args.events))


if __name__ == "__main__":
    main()
