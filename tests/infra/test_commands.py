"""The rest of the `cadenza` command line, run as a user runs it."""
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg

from events.bus import Bus
from events.catalogue import DatasetCreated, ExperimentCreated
from services.settings import Settings

ROOT = Path(__file__).parents[2]


def cadenza(*arguments: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in ("NATS_URL", "DATABASE_URL")}
    return subprocess.run([sys.executable, "-m", "services", *arguments], cwd=ROOT, env=env | variables,
                          capture_output=True, text=True, timeout=60)


def side_by_side(*calls: tuple[tuple[str, ...], dict[str, str]]) -> list[subprocess.CompletedProcess[str]]:
    """`cadenza(*arguments, **variables)` for each call, all at once: each spends most of its time
    starting Python."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: cadenza(*call[0], **call[1]), calls))


def test_a_single_service_says_which_server_addresses_it_needs() -> None:
    registry, api, trainer, generator = side_by_side(
        (("registry",), {}), (("api",), {"NATS_URL": "nats://127.0.0.1:4222"}), (("trainer",), {}), (("generator",), {}))
    assert registry.returncode == 2
    assert "NATS_URL and DATABASE_URL" in registry.stderr

    assert api.returncode == 2
    assert "needs DATABASE_URL" in api.stderr

    for worker, result in (("trainer", trainer), ("generator", generator)):
        assert (result.returncode, result.stderr.strip()) == (2, f"the {worker} needs NATS_URL")


def test_a_worker_setting_out_of_range_is_a_usage_error() -> None:
    trainer, generator = side_by_side(
        (("trainer", "--gpus", "0"), {"NATS_URL": "nats://127.0.0.1:1"}),
        (("generator",), {"NATS_URL": "nats://127.0.0.1:1", "CADENZA_GENERATOR_MAX_ADAPTERS": "0"}))
    assert trainer.returncode == 2
    assert "cadenza trainer: error: gpus must be at least 1, got 0" in trainer.stderr
    assert generator.returncode == 2
    assert "cadenza generator: error: max_adapters must be at least 1, got 0" in generator.stderr


async def test_events_prints_one_aggregates_history_in_stream_order(settings: Settings) -> None:
    dataset_id, other_id = str(uuid.uuid4()), str(uuid.uuid4())
    bus = await Bus.connect(settings.nats_url, settings.namespace)
    await bus.ensure()
    await bus.publish_many([
        DatasetCreated(dataset_id=dataset_id, name="drum loops", kind="supervised"),
        DatasetCreated(dataset_id=other_id, name="strings", kind="preference"),
        ExperimentCreated(experiment_id=str(uuid.uuid4()), name="first", dataset_id=dataset_id, config={}),
    ])
    await bus.close()

    result = cadenza("events", "--aggregate", "dataset", "--id", dataset_id,
                     NATS_URL=settings.nats_url, CADENZA_NAMESPACE=settings.namespace)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert dataset_id in lines[0] and "DatasetCreated v1" in lines[0] and "drum loops" in lines[0]

    result = cadenza("events", NATS_URL=settings.nats_url, CADENZA_NAMESPACE=settings.namespace)
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["1", "2", "3"]
    assert ["DatasetCreated", "DatasetCreated", "ExperimentCreated"] == [
        line.split()[5] for line in result.stdout.splitlines()]


async def test_rebuild_refolds_the_stream_into_the_database(settings: Settings) -> None:
    dataset_id = str(uuid.uuid4())
    bus = await Bus.connect(settings.nats_url, settings.namespace)
    await bus.ensure()
    await bus.publish(DatasetCreated(dataset_id=dataset_id, name="drum loops", kind="supervised"))
    await bus.close()

    result = cadenza("rebuild", NATS_URL=settings.nats_url, DATABASE_URL=settings.database_url,
                     CADENZA_NAMESPACE=settings.namespace)
    assert result.returncode == 0, result.stderr
    assert "from 1 events" in result.stdout
    connection = await asyncpg.connect(settings.database_url)
    assert await connection.fetchval("SELECT name FROM datasets WHERE id = $1", dataset_id) == "drum loops"
    await connection.close()
