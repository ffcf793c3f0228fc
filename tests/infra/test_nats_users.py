"""`cadenza up`'s private nats-server with users (services/nats_users.py): anonymous clients are
refused, and each service may do only its own part, on a real server started as `cadenza up` starts it."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import nats
import nats.errors
from nats.js.errors import ServerError
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from events.bus import Bus
from events.catalogue import (
    CATALOGUE, AdapterSaved, GenerationRequested, GenerationStarted, RunCancelRequested, RunRequested, RunStarted,
)
from events.subjects import subject_filter
from services import embedded, nats_users
from services.cli import main, print_events
from services.generator.settings import DURABLE_NAME as GENERATOR_QUEUE
from services.settings import Settings
from services.trainer.settings import DURABLE_NAME as TRAINER_QUEUE
from services.workqueue import WorkQueue, ensure_consumer

NAMESPACE = "cadenza"
DEPLOY_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "deploy_adapters.py"


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

    async def open(self, url: str, inbox_prefix: str) -> "Connection":
        async def on_error(error: Exception) -> None:
            await self.errors.put(error)

        self.nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False, inbox_prefix=inbox_prefix)
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
        connection = await Connection().open(nats_users.user_url(url, user, users[user]), nats_users.inbox_prefix(user))
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
    assert set(users) == {"admin", "api", "registry", "trainer", "generator", "subscriber"}
    assert nats_users.passwords(tmp_path / "nats") == users  # kept, not generated again
    assert json.loads((tmp_path / "nats" / "users.json").read_text()) == users


async def test_the_streams_an_earlier_release_stored_are_kept(tmp_path: Path) -> None:
    """An earlier release kept every user, and so the streams, in the server's default account."""
    earlier = embedded.start_nats(tmp_path)  # no users: the default account, as that release's were
    try:
        bus = await Bus.connect(earlier.url, NAMESPACE)
        await bus.ensure()
        await bus.publish(RunStarted(run_id="r1", attempt=1, trainer_id="t1"))
        clip = await bus.put_object(bus.clips_bucket, "clip.wav", b"RIFF audio")
        await bus.close()
    finally:
        earlier.stop()
    store = tmp_path / "nats"
    assert main(["nats-config", str(store), "--store", str(store)]) == 0  # as compose's one-shot service does
    nats_users.move_streams_into_their_account(store)  # as `cadenza up` does at every start: moved, left alone
    users = nats_users.passwords(store)
    server = embedded.start_nats(tmp_path, store / "nats-server.conf")
    try:
        bus = await Bus.connect(nats_users.user_url(server.url, "admin", users["admin"]), NAMESPACE)
        assert [type(stored.event) for stored in await bus.history("run", "r1")] == [RunStarted]
        assert await bus.get_object(clip) == b"RIFF audio"
        await bus.close()
    finally:
        server.stop()


async def test_anonymous_clients_and_wrong_passwords_are_refused(server: tuple[str, dict[str, str]]) -> None:
    url, _ = server
    for attempt in (url, nats_users.user_url(url, "api", "not-the-password")):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(attempt, allow_reconnect=False, max_reconnect_attempts=0)


async def test_services_cannot_delete_the_stream_a_consumer_or_an_object(admin_bus: Bus, connect) -> None:
    clip = await admin_bus.put_object(admin_bus.clips_bucket, "clip.wav", b"RIFF audio")
    await admin_bus.js.add_consumer(admin_bus.stream, durable_name=TRAINER_QUEUE,
                                    filter_subject=f"{NAMESPACE}.run.*.run_requested")
    for user in (*nats_users.SERVICES, nats_users.SUBSCRIBER):
        connection = await connect(user)
        js = connection.nc.jetstream(timeout=10)
        await connection.refused(js.delete_stream(admin_bus.stream), "$JS.API.STREAM.DELETE")
        await connection.refused(js.purge_stream(admin_bus.stream), "$JS.API.STREAM.PURGE")
        await connection.refused(js.update_stream(admin_bus.stream_config()), "$JS.API.STREAM.UPDATE")
        await connection.refused(js.delete_consumer(admin_bus.stream, TRAINER_QUEUE), "$JS.API.CONSUMER.DELETE")
        await connection.refused(js.delete_stream(f"OBJ_{admin_bus.clips_bucket}"), "$JS.API.STREAM.DELETE")
        if user == "api":  # it writes clips, so it may add to their bucket, but neither erase nor hide one
            await connection.refused(js.purge_stream(f"OBJ_{admin_bus.clips_bucket}",
                                                     subject=f"$O.{admin_bus.clips_bucket}.C.>"),
                                     "$JS.API.STREAM.PURGE")
            info = await (await js.object_store(admin_bus.clips_bucket)).get_info("clip.wav")
            with pytest.raises(ServerError, match="rollup not permitted"):
                await js.publish(f"$O.{admin_bus.clips_bucket}.C.{info.nuid}", b"", headers={"Nats-Rollup": "sub"})
        else:  # the others may not even mark it deleted
            store = await js.object_store(admin_bus.clips_bucket)
            await connection.refused(store.delete("clip.wav"), admin_bus.clips_bucket)
    # what the api may publish there, a "deleted" marker, hides nothing
    marker = {**info.as_dict(), "deleted": True, "size": 0, "digest": ""}
    await (await connect("api")).nc.jetstream().publish(
        f"$O.{admin_bus.clips_bucket}.M.{base64.urlsafe_b64encode(b'clip.wav').decode()}", json.dumps(marker).encode())
    assert (await admin_bus.js.stream_info(admin_bus.stream)).config.name == admin_bus.stream
    assert (await admin_bus.js.consumer_info(admin_bus.stream, TRAINER_QUEUE)).name == TRAINER_QUEUE
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
    subscribe = api.nc.jetstream().pull_subscribe(f"{NAMESPACE}.run.*.run_requested", durable=TRAINER_QUEUE,
                                                  stream=admin_bus.stream)
    await api.refused(subscribe, "$JS.API.CONSUMER")


def test_every_event_has_a_service_that_may_publish_it() -> None:
    producing = {event for events in nats_users.PUBLISHES.values() for event in events}
    assert set(CATALOGUE.values()) <= producing


async def test_a_service_subscribes_only_under_its_own_inbox(connect) -> None:
    for user in (*nats_users.SERVICES, nats_users.SUBSCRIBER):
        connection = await connect(user)
        # its own inbox serves its requests: the JetStream API answers there
        assert (await connection.nc.jetstream().account_info()).streams >= 0
        others = [nats_users.inbox_prefix(other) for other in nats_users.USERS if other != user]
        for prefix in ("_INBOX", *others):  # nats' default is the admin's, and any other client's
            await connection.refused(connection.nc.subscribe(f"{prefix}.>"), prefix)
        assert connection.errors.empty()


async def test_each_service_does_its_work_as_its_own_user(
        server: tuple[str, dict[str, str]], admin_bus: Bus, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Object stores, work queues, readers, plain subscriptions and `cadenza events --follow`, each
    through `Settings.connect_bus` as `cadenza up` configures its services."""
    url, users = server
    settings = Settings(nats_url=nats_users.user_url(url, "admin", users["admin"]), namespace=NAMESPACE,
                        service_nats_urls={service: nats_users.user_url(url, service, users[service])
                                           for service in nats_users.SERVICES})
    api, trainer, generator, registry = [await settings.for_service(service).connect_bus()
                                         for service in ("api", "trainer", "generator", "registry")]
    following = asyncio.create_task(print_events(settings.for_service("registry"), "run", None, follow=True))
    try:
        for bus in (api, trainer, generator, registry):
            await bus.ensure()
        cancelled: asyncio.Queue[str] = asyncio.Queue()

        async def on_cancel(message: Msg) -> None:
            await cancelled.put(message.subject)

        hearing = await trainer.nc.subscribe(f"{NAMESPACE}.run.*.run_cancel_requested", cb=on_cancel)

        clip = await api.put_object(api.clips_bucket, "clip.wav", b"RIFF audio")
        requested = RunRequested(run_id="r1", experiment_id="e1", dataset_id="d1", name="run", config={})
        await api.publish(requested)
        assert await api.stored_seq(requested) == 1  # how a command retried with its Idempotency-Key finds it
        await api.publish(GenerationRequested(
            generation_id="g1", prompt="a tone", adapter_id=None, base_model="tiny", duration_seconds=1.0, seed=0,
            num_samples=1, guidance_scale=3.0, temperature=1.0, top_k=250, top_p=0.0))

        request = await take_request(trainer, WorkQueue(
            TRAINER_QUEUE, subject_filter(NAMESPACE, "run", event_name=RunRequested.event_name()), 30.0))
        assert await trainer.get_object(clip) == b"RIFF audio"
        await trainer.put_object(trainer.checkpoints_bucket, "r1/step-1", b"checkpoint")
        adapter = await trainer.put_object(trainer.adapters_bucket, "r1.zip", b"adapter")
        await trainer.publish(RunStarted(run_id="r1", attempt=1, trainer_id="t1"))
        await request.ack()

        request = await take_request(generator, WorkQueue(
            GENERATOR_QUEUE, subject_filter(NAMESPACE, "generation", event_name=GenerationRequested.event_name()),
            30.0))
        assert await generator.get_object(adapter) == b"adapter"
        sample = await generator.put_object(generator.samples_bucket, "g1/0.wav", b"sample")
        await generator.publish(GenerationStarted(generation_id="g1", attempt=1, worker_id="w1"))
        await request.ack()
        assert await api.get_object(sample) == b"sample"

        await api.publish(RunCancelRequested(run_id="r1"))
        assert (await asyncio.wait_for(cancelled.get(), 20)).endswith("run_cancel_requested")
        await hearing.unsubscribe()

        read = [stored.event async for stored in registry.events()]
        assert [type(event) for event in read] == [RunRequested, GenerationRequested, RunStarted, GenerationStarted,
                                                   RunCancelRequested]
        printed = ""
        for _ in range(200):  # a bound on waiting (20 s), not a measurement
            printed += capsys.readouterr().out
            if "RunCancelRequested" in printed:
                break
            await asyncio.sleep(0.1)
        assert [line.split()[5] for line in printed.splitlines()] == ["RunRequested", "RunStarted", "RunCancelRequested"]
    finally:
        following.cancel()
        await asyncio.wait([following], timeout=20)  # bounded: cancelled while starting, it may linger
        for bus in (api, trainer, generator, registry):
            await bus.close()
    assert "violation" not in caplog.text.lower()  # the bus logs what the server refuses


async def test_a_subscriber_deploys_new_adapters_and_can_change_nothing(
        server: tuple[str, dict[str, str]], admin_bus: Bus, connect, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An outside program (the deployment example, nats-py only) as the `subscriber` user: it
    follows the stream with a durable consumer of its own and downloads the adapter an event names."""
    url, users = server
    trainer = await Bus.connect(nats_users.user_url(url, "trainer", users["trainer"]), NAMESPACE,
                                inbox_prefix=nats_users.inbox_prefix("trainer"))
    try:
        adapter = await trainer.put_object(trainer.adapters_bucket, "r1.zip", b"adapter bytes")
        # other bytes stored under the name later: an object-store client would read these
        await trainer.put_object(trainer.adapters_bucket, "r1.zip", b"newer bytes")
        saved = AdapterSaved(run_id="r1", adapter_id="a1", experiment_id="e1", name="ambient-night", adapter=adapter,
                             base_model="tiny", dataset_type="supervised", lora_config={}, final_loss=1.0)
        await trainer.publish(saved)
    finally:
        await trainer.close()

    deployer = await asyncio.create_subprocess_exec(
        sys.executable, str(DEPLOY_EXAMPLE), "--nats-url", nats_users.user_url(url, "subscriber", users["subscriber"]),
        "--inbox-prefix", nats_users.inbox_prefix("subscriber"), "--namespace", NAMESPACE,
        "--out", str(tmp_path / "deployed"), "--count", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(deployer.communicate(), timeout=60)
    assert deployer.returncode == 0, stderr.decode()
    [deployed] = [json.loads(line) for line in stdout.decode().splitlines()]
    assert (deployed["adapter_id"], deployed["sha256"]) == ("a1", hashlib.sha256(b"adapter bytes").hexdigest())
    assert Path(deployed["path"]).read_bytes() == b"adapter bytes"
    # `cadenza events` reads as the subscriber too
    await print_events(Settings(nats_url=nats_users.user_url(url, "subscriber", users["subscriber"]),
                                namespace=NAMESPACE, nats_inbox_prefix=nats_users.inbox_prefix("subscriber")),
                       "run", None, follow=False)
    assert [line.split()[5] for line in capsys.readouterr().out.splitlines()] == ["AdapterSaved"]

    subscriber = await connect("subscriber")
    js = subscriber.nc.jetstream(timeout=10)
    before = await admin_bus.last_seq()
    await subscriber.refused(js.publish(saved.subject(NAMESPACE), saved.model_dump_json().encode()),
                             saved.subject(NAMESPACE))
    requested = RunRequested(run_id="r2", experiment_id="e1", dataset_id="d1", name="run", config={})
    await subscriber.refused(js.publish(requested.subject(NAMESPACE), b"{}"), requested.subject(NAMESPACE))
    await subscriber.refused(js.pull_subscribe(f"{NAMESPACE}.run.*.run_requested", durable=TRAINER_QUEUE,
                                               stream=admin_bus.stream), "$JS.API.CONSUMER")
    adapters = await js.object_store(admin_bus.adapters_bucket)
    await subscriber.refused(adapters.put("forged.zip", b"forged"), admin_bus.adapters_bucket)
    await subscriber.refused(js.add_stream(name="ELSEWHERE", subjects=["elsewhere.>"]), "$JS.API.STREAM.CREATE")
    assert await admin_bus.last_seq() == before
    assert (await admin_bus.js.consumer_info(admin_bus.stream, "deploy-adapters")).num_ack_pending == 0


async def take_request(bus: Bus, queue: WorkQueue) -> Msg:
    """The next request on the work queue, taken as a worker takes it."""
    await ensure_consumer(bus, queue)
    subscription = await bus.js.pull_subscribe_bind(queue.durable_name, bus.stream)
    [message] = await subscription.fetch(1, timeout=20)
    return message
