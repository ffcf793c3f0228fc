"""`cadenza up`'s private nats-server with users (services/nats_users.py): anonymous clients are
refused, and each service may do only its own part, on a real server started as `cadenza up` starts it."""
from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client

from events.bus import Bus
from events.catalogue import CATALOGUE, RunRequested, RunStarted
from services import embedded, nats_users
from services.trainer.config import DURABLE_NAME

NAMESPACE = "cadenza"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A private nats-server with Cadenza's users; yields its URL (without credentials) and the passwords."""
    store = tmp_path / "nats"
    store.mkdir()
    users = nats_users.passwords(store)
    nats_server = embedded.start_nats(tmp_path, nats_users.write_server_config(store, NAMESPACE, users))
    yield nats_server.url, users
    nats_server.stop()


class Connection:
    """A connection as one user, collecting the errors the server sends it (permission violations)."""

    def __init__(self) -> None:
        self.errors: asyncio.Queue[Exception] = asyncio.Queue()
        self.nc: Client | None = None

    async def open(self, url: str) -> "Connection":
        async def on_error(error: Exception) -> None:
            await self.errors.put(error)

        self.nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False)
        return self

    async def refused(self, action: Awaitable[object], subject_prefix: str) -> None:
        """Run `action` until the server reports the permission violation it causes; the action's
        request then never gets an answer, so it is cancelled."""
        task = asyncio.ensure_future(action)
        try:
            error = await asyncio.wait_for(self.errors.get(), timeout=20)
        finally:
            task.cancel()
        assert "permissions violation" in str(error).lower(), error
        assert subject_prefix.lower() in str(error).lower(), error  # nats-py lowercases the message


@pytest.fixture
async def connect(server: tuple[str, dict[str, str]]) -> AsyncIterator:
    url, users = server
    opened: list[Connection] = []

    async def as_user(user: str) -> Connection:
        connection = await Connection().open(nats_users.user_url(url, user, users[user]))
        opened.append(connection)
        return connection

    yield as_user
    for connection in opened:
        await connection.nc.close()


@pytest.fixture
async def admin_bus(server: tuple[str, dict[str, str]]) -> AsyncIterator[Bus]:
    url, users = server
    bus = await Bus.connect(nats_users.user_url(url, "admin", users["admin"]), NAMESPACE)
    await bus.ensure()
    yield bus
    await bus.close()


def test_passwords_and_configuration_are_readable_by_their_owner_alone(
        server: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    _, users = server
    for name in ("users.json", "nats-server.conf"):
        assert stat.S_IMODE((tmp_path / "nats" / name).stat().st_mode) == 0o600
    assert set(users) == {"admin", "api", "registry", "trainer", "generator"}
    assert nats_users.passwords(tmp_path / "nats") == users  # kept, not generated again
    assert json.loads((tmp_path / "nats" / "users.json").read_text()) == users


async def test_anonymous_clients_and_wrong_passwords_are_refused(server: tuple[str, dict[str, str]]) -> None:
    url, _ = server
    for attempt in (url, nats_users.user_url(url, "api", "not-the-password")):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(attempt, allow_reconnect=False, max_reconnect_attempts=0)


async def test_services_cannot_delete_the_stream_a_consumer_or_an_object(admin_bus: Bus, connect) -> None:
    clip = await admin_bus.put_object(admin_bus.clips_bucket, "clip.wav", b"RIFF audio")
    await admin_bus.js.add_consumer(admin_bus.stream, durable_name=DURABLE_NAME,
                                    filter_subject=f"{NAMESPACE}.run.*.run_requested")
    for user in nats_users.SERVICES:
        connection = await connect(user)
        js = connection.nc.jetstream(timeout=10)
        await connection.refused(js.delete_stream(admin_bus.stream), "$JS.API.STREAM.DELETE")
        await connection.refused(js.purge_stream(admin_bus.stream), "$JS.API.STREAM.PURGE")
        await connection.refused(js.update_stream(admin_bus.stream_config()), "$JS.API.STREAM.UPDATE")
        await connection.refused(js.delete_consumer(admin_bus.stream, DURABLE_NAME), "$JS.API.CONSUMER.DELETE")
        await connection.refused(js.delete_stream(f"OBJ_{admin_bus.clips_bucket}"), "$JS.API.STREAM.DELETE")
        if user == "api":  # it writes clips, so it may write their metadata, but never purge their chunks
            await connection.refused(js.purge_stream(f"OBJ_{admin_bus.clips_bucket}",
                                                     subject=f"$O.{admin_bus.clips_bucket}.C.>"),
                                     "$JS.API.STREAM.PURGE")
        else:  # the others may not even mark it deleted
            store = await js.object_store(admin_bus.clips_bucket)
            await connection.refused(store.delete("clip.wav"), admin_bus.clips_bucket)
    assert (await admin_bus.js.stream_info(admin_bus.stream)).config.name == admin_bus.stream
    assert (await admin_bus.js.consumer_info(admin_bus.stream, DURABLE_NAME)).name == DURABLE_NAME
    assert await admin_bus.get_object(clip) == b"RIFF audio"


async def test_the_api_cannot_publish_what_trainers_say_and_trainers_cannot_request_runs(
        admin_bus: Bus, connect) -> None:
    started = RunStarted(run_id="r1", attempt=1, trainer_id="t1")
    requested = RunRequested(run_id="r1", experiment_id="e1", dataset_id="d1", name="run", config={})
    api, trainer = await connect("api"), await connect("trainer")
    before = await admin_bus.last_seq()

    await api.refused(api.nc.jetstream().publish(started.subject(NAMESPACE), b"{}"), started.subject(NAMESPACE))
    await trainer.refused(trainer.nc.jetstream().publish(requested.subject(NAMESPACE), b"{}"),
                          requested.subject(NAMESPACE))
    assert await admin_bus.last_seq() == before

    # each may publish its own events: the refusals above are about who, not about the subjects
    await api.nc.jetstream().publish(requested.subject(NAMESPACE), b"{}")
    await trainer.nc.jetstream().publish(started.subject(NAMESPACE), b"{}")
    assert await admin_bus.last_seq() == before + 2


async def test_only_the_trainers_bind_their_work_queue(admin_bus: Bus, connect) -> None:
    api = await connect("api")
    subscribe = api.nc.jetstream().pull_subscribe(f"{NAMESPACE}.run.*.run_requested", durable=DURABLE_NAME,
                                                  stream=admin_bus.stream)
    await api.refused(subscribe, "$JS.API.CONSUMER")


def test_every_event_has_a_service_that_may_publish_it() -> None:
    producing = {event for events in nats_users.PUBLISHES.values() for event in events}
    assert set(CATALOGUE.values()) <= producing
