"""The API while a dependency is away (stopped or hung): 503 with Retry-After and a JSON message, never a plain 500
and never a hang; a command retried with its Idempotency-Key creates nothing twice; writes waiting
for a stopped registry do not starve the reads."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx

from events.bus import Bus
from fault_injection import assert_equal_to_a_clean_rebuild
from services.api.app import create_app
from services.registry.projector import run_projector
from services.settings import Settings

LIVENESS = 120.0  # a bound on hanging, not a timing assertion


@contextlib.asynccontextmanager
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cadenza", timeout=LIVENESS) as client:
            yield client


@contextlib.asynccontextmanager
async def projector(settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_projector(settings, stop))
    try:
        yield
    finally:
        assert not task.done(), "the projector ended by itself"
        stop.set()
        await asyncio.wait_for(task, timeout=LIVENESS)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["detail"]


async def create_once_retrying(client: httpx.AsyncClient, key: dict[str, str]) -> httpx.Response:
    """POST the dataset "once" with its Idempotency-Key until the answer is no longer a 503."""
    async def retried() -> httpx.Response:
        while (response := await client.post("/api/datasets", json={"name": "once", "kind": "supervised"},
                                             headers=key)).status_code == 503:
            await asyncio.sleep(0.2)
        return response

    return await asyncio.wait_for(retried(), LIVENESS)


async def stored_types(settings: Settings) -> list[str]:
    bus = await Bus.connect(settings.nats_url, settings.namespace)
    try:
        return [stored.envelope.type async for stored in bus.events()]
    finally:
        await bus.close()


async def test_database_routes_answer_503_while_postgres_is_stopped_or_hung(fault_settings, restartable_postgres):
    async with api(fault_settings) as client, projector(fault_settings):
        created = await client.post("/api/datasets", json={"name": "before", "kind": "supervised"})
        assert created.status_code == 201

        restartable_postgres.stop()
        assert_unavailable(await client.get("/api/datasets"))
        assert_unavailable(await client.get(f"/api/datasets/{created.json()['id']}"))
        restartable_postgres.start()

        restartable_postgres.hang()
        try:
            # bounded by the database timeout (2 s here): a 503, not a hang
            assert_unavailable(await asyncio.wait_for(client.get("/api/datasets"), LIVENESS))
        finally:
            restartable_postgres.resume()

        async def listed() -> httpx.Response:
            while (response := await client.get("/api/datasets")).status_code != 200:
                await asyncio.sleep(0.2)
            return response

        assert [d["name"] for d in (await asyncio.wait_for(listed(), LIVENESS)).json()] == ["before"]
    await assert_equal_to_a_clean_rebuild(fault_settings)


async def test_a_command_retried_with_its_key_while_postgres_was_stopped_creates_one_dataset(
        fault_settings, restartable_postgres):
    async with api(fault_settings) as client, projector(fault_settings):
        key = {"Idempotency-Key": "create-the-dataset-once"}
        restartable_postgres.stop()
        # published, but its projection cannot be waited for: 503, and the event is stored
        assert_unavailable(await client.post("/api/datasets", json={"name": "once", "kind": "supervised"}, headers=key))
        restartable_postgres.start()

        first = await create_once_retrying(client, key)
        again = await client.post("/api/datasets", json={"name": "once", "kind": "supervised"}, headers=key)
        other = await client.post("/api/datasets", json={"name": "another", "kind": "supervised"},
                                  headers={"Idempotency-Key": "another-key"})

        assert first.status_code == again.status_code == other.status_code == 201
        assert first.json() == again.json() and other.json()["id"] != first.json()["id"]
        assert sorted(d["name"] for d in (await client.get("/api/datasets")).json()) == ["another", "once"]
        assert (await stored_types(fault_settings)).count("DatasetCreated") == 2
    await assert_equal_to_a_clean_rebuild(fault_settings)


async def test_commands_answer_503_while_nats_is_down_and_a_retry_creates_one_dataset(
        fault_settings, restartable_nats):
    settings = replace(fault_settings, nats_url=restartable_nats.url)
    await asyncio.sleep(0.3)  # the server's first start
    key = {"Idempotency-Key": "while-nats-was-down"}
    async with api(settings) as client, projector(settings):
        restartable_nats.stop()
        assert_unavailable(await client.post("/api/datasets", json={"name": "once", "kind": "supervised"}, headers=key))
        restartable_nats.start()

        assert (await create_once_retrying(client, key)).status_code == 201
        assert [d["name"] for d in (await client.get("/api/datasets")).json()] == ["once"]
        assert (await stored_types(settings)).count("DatasetCreated") == 1
    await assert_equal_to_a_clean_rebuild(settings)


async def test_commands_answer_503_while_nats_is_hung_reads_go_on_and_everything_resumes(
        fault_settings, restartable_nats):
    settings = replace(fault_settings, nats_url=restartable_nats.url)
    await asyncio.sleep(0.3)  # the server's first start
    key = {"Idempotency-Key": "while-nats-was-hung"}
    async with api(settings) as client, projector(settings):
        assert (await client.post("/api/datasets", json={"name": "before", "kind": "supervised"})).status_code == 201
        restartable_nats.hang()
        try:
            command = asyncio.create_task(
                client.post("/api/datasets", json={"name": "once", "kind": "supervised"}, headers=key))
            read = await asyncio.wait_for(client.get("/api/datasets"), LIVENESS)
            assert read.status_code == 200 and [d["name"] for d in read.json()] == ["before"]
            assert_unavailable(await asyncio.wait_for(command, LIVENESS))  # bounded: no hang
        finally:
            restartable_nats.resume()

        assert (await create_once_retrying(client, key)).status_code == 201
        assert sorted(d["name"] for d in (await client.get("/api/datasets")).json()) == ["before", "once"]
        assert (await stored_types(settings)).count("DatasetCreated") == 2
    await assert_equal_to_a_clean_rebuild(settings)


async def test_writes_waiting_for_a_stopped_registry_do_not_starve_reads(fault_settings):
    # The writes below wait out this timeout: seconds longer than the read needs, and shorter than the 10 s default.
    async with api(replace(fault_settings, projection_timeout=4.0)) as client:
        async with projector(fault_settings):
            assert (await client.post("/api/datasets", json={"name": "first", "kind": "supervised"})).status_code == 201
        # the registry is stopped: 25 writes wait for their projection, more than the pool's connections
        writes = [asyncio.create_task(client.post("/api/datasets", json={"name": f"w{i}", "kind": "supervised"},
                                                  headers={"Idempotency-Key": f"write-{i}"}))
                  for i in range(25)]
        await asyncio.sleep(0.5)
        read = await asyncio.wait_for(client.get("/api/datasets"), LIVENESS)
        assert read.status_code == 200 and not any(write.done() for write in writes), \
            "a read must be answered while the writes still wait"
        for response in await asyncio.gather(*writes):
            assert_unavailable(response)
            assert "after 4.0 s" in response.json()["detail"]

        async with projector(fault_settings):
            retried = await asyncio.gather(*(
                client.post("/api/datasets", json={"name": f"w{i}", "kind": "supervised"},
                            headers={"Idempotency-Key": f"write-{i}"}) for i in range(25)))
        assert all(response.status_code == 201 for response in retried)
        assert len((await client.get("/api/datasets")).json()) == 26
    await assert_equal_to_a_clean_rebuild(fault_settings)
