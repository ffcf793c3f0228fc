"""Load: 20 concurrent clients against one API process on real servers, latency per read endpoint.

The API (`cadenza api`) and the projector (`cadenza registry`) run as their own processes; the
clients run here, with aiohttp: on this machine they share the API's cores, and aiohttp's client
spends a fifth of the CPU per request that httpx's does, which would otherwise count as the API's
latency. One run has 200,000 train points in `run_metrics` (copied in directly, with the
summary built by the function the projector calls: the projector's rate is bench/projector.py's subject) and is read at `max_points=2000`, next to the
other read endpoints. Every request must answer 200: any other answer or a transport error counts
as dropped. Besides the latencies it prints the CPU time the API process and the clients spent per
request: on a machine shared with other work, latencies move with its load, CPU time much less."""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack, ExitStack
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from services.embedded import start_missing  # noqa: E402

POINTS = 200_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` so far (Linux: /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def tone() -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.3 * np.sin(np.arange(32_000) / 10)).astype(np.float32), 16_000, format="WAV")
    return buffer.getvalue()


async def post(client: aiohttp.ClientSession, path: str, **body: object) -> dict:
    async with client.post(path, raise_for_status=True, **body) as response:
        return await response.json()


async def seed(client: aiohttp.ClientSession, database_url: str) -> str:
    """A dataset with a clip, an experiment, a run with POINTS train points; the run's id."""
    dataset = await post(client, "/api/datasets", json={"name": "load", "kind": "supervised"})
    clip = aiohttp.FormData({"prompt": "calm"})
    clip.add_field("file", tone(), filename="a.wav")
    await post(client, f"/api/datasets/{dataset['id']}/clips", data=clip)
    experiment = await post(client, "/api/experiments", json={"name": "load", "dataset_id": dataset["id"], "config": {}})
    run = await post(client, f"/api/experiments/{experiment['id']}/runs", json={})
    now = datetime.now(timezone.utc)
    rows = [(run["id"], "train", step, 1, step / 1000, 2.0 + np.sin(step / 500) + 0.1 * np.cos(step), now)
            for step in range(POINTS)]
    connection = await asyncpg.connect(database_url)
    try:
        await connection.copy_records_to_table(
            "run_metrics", records=rows, columns=["run_id", "split", "step", "attempt", "epoch", "loss", "reported_at"])
        # the curve's summary, as the projector builds it when it folds the points
        await connection.execute("SELECT refresh_metric_buckets($1, 'train', 0, $2)", run["id"], POINTS - 1)
    finally:
        await connection.close()
    return run["id"]


def session(url: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url=url, timeout=aiohttp.ClientTimeout(total=60),
                                 connector=aiohttp.TCPConnector(limit=1))


async def load(url: str, run_id: str, clients: int, rounds: int, api_pid: int) -> None:
    endpoints = {
        "runs": "/api/runs",
        "run": f"/api/runs/{run_id}",
        "metrics (200k points, max_points=2000)": f"/api/runs/{run_id}/metrics?max_points=2000",
        "events": f"/api/runs/{run_id}/events",
        "logs": f"/api/runs/{run_id}/logs",
        "datasets": "/api/datasets",
        "experiments": "/api/experiments",
    }
    latencies: dict[str, list[float]] = {name: [] for name in endpoints}
    dropped: list[str] = []

    async def client_loop(index: int, client: aiohttp.ClientSession) -> None:
        names = list(endpoints)
        for round_ in range(rounds):
            name = names[(index + round_) % len(names)]  # clients spread over the endpoints
            started = time.perf_counter()
            try:
                async with client.get(endpoints[name]) as response:
                    await response.read()
                    if response.status != 200:
                        dropped.append(f"{name}: {response.status}")
                        continue
            except aiohttp.ClientError as error:
                dropped.append(f"{name}: {error!r}")
                continue
            latencies[name].append(time.perf_counter() - started)

    async with AsyncExitStack() as stack:
        # Made before the clock starts, each with its own connection as a browser tab would hold.
        http_clients = [await stack.enter_async_context(session(url)) for _ in range(clients)]
        started, api_cpu, clients_cpu = time.perf_counter(), cpu_seconds(api_pid), time.process_time()
        await asyncio.gather(*(client_loop(index, client) for index, client in enumerate(http_clients)))
        seconds = time.perf_counter() - started
        api_cpu, clients_cpu = cpu_seconds(api_pid) - api_cpu, time.process_time() - clients_cpu
    total = sum(len(values) for values in latencies.values())
    requests = total + len(dropped)
    print(f"{clients} clients, {requests} requests in {seconds:.1f} s ({total / seconds:.0f}/s); "
          f"dropped: {len(dropped)} {dropped[:5]}")
    print(f"CPU per request: API process {api_cpu / requests * 1000:.2f} ms, "
          f"clients {clients_cpu / requests * 1000:.2f} ms; load average {os.getloadavg()[0]:.2f}")
    print(f"{'endpoint':<40} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, values in latencies.items():
        values.sort()
        print(f"{name:<40} {len(values):>5} {values[len(values) // 2] * 1000:>8.1f} "
              f"{values[int(len(values) * 0.95)] * 1000:>8.1f} {values[-1] * 1000:>8.1f}")


async def bench(nats_url: str, admin_url: str, clients: int, rounds: int) -> None:
    namespace = f"load{uuid.uuid4().hex[:8]}"
    database = f"cadenza_{namespace}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    database_url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{database}"))
    port = free_port()
    env = {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": database_url, "CADENZA_NAMESPACE": namespace}
    cadenza = [sys.executable, "-m", "services"]
    api = subprocess.Popen([*cadenza, "api", "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
    registry = subprocess.Popen([*cadenza, "registry"], env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        async with session(url) as client:
            while True:
                try:
                    async with client.get("/api/datasets") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.2)
            run_id = await seed(client, database_url)
        await load(url, run_id, clients, rounds, api.pid)
    finally:
        for process in (api, registry):
            process.terminate()
            process.wait(30)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=150, help="requests per client")
    args = parser.parse_args()
    with ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="cadenza-load-"))
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        nats_url, database_url = start_missing(
            os.environ.get("NATS_URL", ""), os.environ.get("DATABASE_URL", ""), data_dir, stack)
        asyncio.run(bench(nats_url, database_url, args.clients, args.rounds))


if __name__ == "__main__":
    main()
