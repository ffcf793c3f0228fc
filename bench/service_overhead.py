"""What the services add to a training run, measured in one run on the tiny MusicGen:

  overhead   the same training (same data, same config, cold feature cache each time) run by the
             model CLI alone, from process start to exit, versus requested through the services
             (POST /api/experiments/{id}/runs -> trainer -> CLI subprocess -> LossReported/checkpoint/
             adapter events and uploads -> RunCompleted on the stream); alternating, a few of each,
             as the ratios of the medians and of the fastest (wall time; identical CLI runs differ by
             10-20 % on this machine, so one pair of runs says little)
  latency    with an idle trainer, from POST .../runs to RunStarted on the stream, over N runs
             (each cancelled once started; p50/p95)

The API (create_app behind httpx's ASGI transport), the registry projector and one trainer run as
tasks in this process's event loop, as `cadenza up` runs them.

Usage: python bench/service_overhead.py [--steps 200] [--repeats 5] [--latency-runs 20]. Uses NATS_URL /
DATABASE_URL (an admin URL: a database is created and dropped) when set, else private servers under
a temporary folder.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import numpy as np
import soundfile

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from events.bus import Bus  # noqa: E402
from events.subjects import parse_subject, subject_filter  # noqa: E402
from services.api.app import create_app  # noqa: E402
from services.embedded import start_missing  # noqa: E402
from services.registry.projector import run_projector  # noqa: E402
from services.settings import Settings  # noqa: E402
from services.trainer.settings import TrainerSettings  # noqa: E402
from services.trainer.worker import run_trainer  # noqa: E402

SAMPLE_RATE = 32_000
CLIPS = 4


def clip(number: int) -> bytes:
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * 110 * (number + 1) * t)).astype(np.float32), SAMPLE_RATE,
                    format="WAV")
    return buffer.getvalue()


def training_config(tiny_model: Path, steps: int) -> dict:
    return {"base_model": str(tiny_model), "device": "cpu", "max_steps": steps, "num_epochs": 1000,
            "batch_size": 2, "learning_rate": 1e-3, "lora_r": 8, "lora_alpha": 16, "checkpoint_every": 100}


async def cli_alone(work: Path, tiny_model: Path, steps: int) -> float:
    """The model CLI on the same data written as a JSONL next to its wav files."""
    work.mkdir()
    rows = []
    for number in range(CLIPS):
        (work / f"take-{number}.wav").write_bytes(clip(number))
        rows.append(json.dumps({"prompt": "calm lofi piano", "audio_path": f"take-{number}.wav"}))
    (work / "dataset.jsonl").write_text("\n".join(rows) + "\n")
    (work / "config.json").write_text(json.dumps({**training_config(tiny_model, steps), "dataset_type": "supervised"}))
    command = [sys.executable, "-m", "model.training.cli", "train", "--dataset", str(work / "dataset.jsonl"),
               "--type", "supervised", "--output", str(work / "output"), "--name", "bench",
               "--config", str(work / "config.json"), "--cache-dir", str(work / "features")]
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(*command, cwd=REPOSITORY, stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=asyncio.subprocess.DEVNULL)
    if await process.wait() != 0:
        raise RuntimeError(f"the model CLI failed: {command}")
    return time.perf_counter() - started


class Services:
    def __init__(self, settings: Settings, client: httpx.AsyncClient, bus: Bus) -> None:
        self.settings, self.client, self.bus = settings, client, bus
        self.run_ids: list[str] = []

    async def before_training(self, run_id: str) -> float:
        """Seconds the services spent before the CLI could start: RunRequested -> DatasetExported, as
        stamped on the events (request, projection wait, fetch, history, RunStarted, export)."""
        stamps = {s.envelope.type: s.envelope.occurred_at for s in await self.bus.history("run", run_id)}
        return (stamps["DatasetExported"] - stamps["RunRequested"]).total_seconds()

    async def post(self, path: str, **kwargs: object) -> dict:
        response = await self.client.post(path, **kwargs)
        response.raise_for_status()
        return response.json()

    async def experiment(self, config: dict) -> dict:
        dataset = await self.post("/api/datasets", json={"name": "bench", "kind": "supervised"})
        for number in range(CLIPS):
            await self.post(f"/api/datasets/{dataset['id']}/clips", data={"prompt": "calm lofi piano"},
                            files={"file": (f"take-{number}.wav", clip(number))})
        return await self.post("/api/experiments", json={"name": "bench", "dataset_id": dataset["id"], "config": config})

    async def timed_run(self, experiment: dict, until: str, then_cancel: bool = False) -> float:
        """Seconds from POST .../runs to the run's `until` event arriving from the stream."""
        arrived: asyncio.Queue[str] = asyncio.Queue()

        async def on_event(message) -> None:
            arrived.put_nowait(message.subject)

        subscription = await self.bus.nc.subscribe(subject_filter(self.bus.subject_root, "run", event_name=until), cb=on_event)
        try:
            started = time.perf_counter()
            run = await self.post(f"/api/experiments/{experiment['id']}/runs", json={})
            while parse_subject(await arrived.get()).aggregate_id != run["id"]:
                pass
            seconds = time.perf_counter() - started
        finally:
            await subscription.unsubscribe()
        self.run_ids.append(run["id"])
        if then_cancel:
            await self.post(f"/api/runs/{run['id']}/cancel")
            while (await self.client.get(f"/api/runs/{run['id']}")).json()["status"] != "cancelled":
                await asyncio.sleep(0.05)
        return seconds


async def measure(settings: Settings, work: Path, tiny_model: Path, steps: int, repeats: int,
                  latency_runs: int) -> tuple[list[float], list[float], list[float], list[float]]:
    """Alternate CLI-alone and through-the-services trainings (`repeats` each), then the latencies."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        stop = asyncio.Event()
        projector = asyncio.create_task(run_projector(settings, stop))
        trainer = asyncio.create_task(run_trainer(settings, stop, TrainerSettings(trainer_id="bench")))
        bus = await Bus.connect(settings.nats_url, settings.namespace)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cadenza",
                                         timeout=60) as client:
                services = Services(settings, client, bus)
                experiment = await services.experiment(training_config(tiny_model, steps))
                alone, through = [], []
                for repeat in range(repeats):
                    alone.append(await cli_alone(work / f"cli-{repeat}", tiny_model, steps))
                    shutil.rmtree(settings.cache_dir / "features", ignore_errors=True)  # cold, as for the CLI
                    through.append(await services.timed_run(experiment, "run_completed"))
                before = [await services.before_training(run_id) for run_id in services.run_ids]
                quick = await services.experiment(training_config(tiny_model, 1))
                await asyncio.sleep(6)  # the trainer's next fetch is waiting: it is idle
                latencies = [await services.timed_run(quick, "run_started", then_cancel=True)
                             for _ in range(latency_runs)]
        finally:
            stop.set()
            await asyncio.gather(projector, trainer)
            await bus.close()
    return alone, through, before, latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def bench(nats_url: str, admin_url: str, work: Path, steps: int, repeats: int, latency_runs: int) -> None:
    from model.tiny import build_tiny_model

    tiny_model = build_tiny_model(work / "tiny-model")
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    database = f"cadenza_{namespace}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    settings = Settings(nats_url=nats_url, database_url=urlunsplit(urlsplit(admin_url)._replace(path=f"/{database}")),
                        namespace=namespace, data_dir=work / "data", cache_dir=work / "cache", model_dirs=(work,))
    try:
        alone, through, before, latencies = await measure(settings, work, tiny_model, steps, repeats, latency_runs)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
        bus = await Bus.connect(nats_url, namespace)
        for info in await bus.js.streams_info():
            if namespace.lower() in info.config.name.lower():
                await bus.js.delete_stream(info.config.name)
        await bus.close()

    print(f"training run, tiny model, {steps} steps, {CLIPS} clips of 2 s, batch 2, cold feature cache, "
          f"{repeats} of each, alternating (seconds):")
    print(f"  model CLI alone:        {'  '.join(f'{t:7.2f}' for t in alone)}")
    print(f"  through the services:   {'  '.join(f'{t:7.2f}' for t in through)}   (POST .../runs -> RunCompleted)")
    print(f"  ratio of the medians:   {statistics.median(through) / statistics.median(alone):7.3f}")
    print(f"  ratio of the fastest:   {min(through) / min(alone):7.3f}")
    print(f"  before the CLI starts:  {'  '.join(f'{t:7.3f}' for t in before)}   (RunRequested -> DatasetExported)")
    print(f"POST .../runs -> RunStarted with an idle trainer, {len(latencies)} runs:")
    print(f"  p50 {percentile(latencies, 0.5) * 1000:6.1f} ms   p95 {percentile(latencies, 0.95) * 1000:6.1f} ms   "
          f"max {max(latencies) * 1000:6.1f} ms   mean {statistics.mean(latencies) * 1000:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5, help="trainings of each kind, alternating")
    parser.add_argument("--latency-runs", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cadenza-bench-"))
    work.chmod(0o755)  # a private PostgreSQL runs as its own user and must enter it
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        nats_url, database_url = start_missing(
            os.environ.get("NATS_URL", ""), os.environ.get("DATABASE_URL", ""), work / "servers", stack)
        asyncio.run(bench(nats_url, database_url, work, args.steps, args.repeats, args.latency_runs))


if __name__ == "__main__":
    main()
