"""What one service's password lets a client do to the others on `cadenza up`'s private nats-server:
every user may read the stream through consumers of its own, publish its own events and write its
own buckets, but may neither reach what another consumes nor keep off, forge or corrupt what
another publishes or stores."""
from __future__ import annotations

import asyncio
import json

import pytest
from nats.js import api

from events import objects
from events.base import AudioFile, Envelope
from events.bus import Bus
from events.catalogue import ClipAdded, RunCancelRequested, RunCompleted, RunRequested, RunStarted
from events.codec import UndecodableEvent, encode
from services import cancels, nats_users
from services.trainer.settings import DURABLE_NAME as TRAINER_QUEUE
from tests.infra.test_nats_users import NAMESPACE, admin_bus, connect, server  # noqa: F401 (fixtures)

DEPLOYER = "deploy-adapters"  # the deployment example's durable consumer (examples/deploy_adapters.py)


async def test_no_other_user_changes_a_work_queue_through_a_create_without_its_name(admin_bus: Bus, connect) -> None:
    """The name of a consumer created on `$JS.API.CONSUMER.CREATE.<stream>` is only in the request's
    body, where permissions do not look: with that subject allowed, any user could rewrite the
    trainers' queue (here, to deliver nothing)."""
    queue = await admin_bus.js.add_consumer(admin_bus.stream, durable_name=TRAINER_QUEUE, ack_policy="explicit",
                                            filter_subject=f"{NAMESPACE}.run.*.run_requested")
    config = {**queue.config.as_dict(), "name": TRAINER_QUEUE, "filter_subject": f"{NAMESPACE}.nothing.>"}
    del config["durable_name"]
    for user in ("api", "registry", "generator", nats_users.SUBSCRIBER):
        connection = await connect(user)
        subject = f"$JS.API.CONSUMER.CREATE.{admin_bus.stream}"
        request = json.dumps({"stream_name": admin_bus.stream, "config": config}).encode()
        await connection.refused(connection.nc.request(subject, request, timeout=10), subject)
    assert (await admin_bus.js.consumer_info(admin_bus.stream, TRAINER_QUEUE)).config.filter_subject == \
        f"{NAMESPACE}.run.*.run_requested"


async def test_no_user_learns_the_names_of_other_readers(admin_bus: Bus, connect) -> None:
    """Anyone may fetch from a consumer whose name it knows (readers' names are random), and take the
    events it would deliver: the projector would fold past them."""
    registry = await connect("registry")
    reader = await Bus(registry.nc, NAMESPACE).reader()
    try:
        for user in (*nats_users.SERVICES, nats_users.SUBSCRIBER):
            connection = await connect(user)
            js = connection.nc.jetstream(timeout=10)
            await connection.refused(js._jsm._api_request(f"$JS.API.CONSUMER.NAMES.{admin_bus.stream}", b"{}"),
                                     "$JS.API.CONSUMER.NAMES")
            await connection.refused(js._jsm._api_request(f"$JS.API.CONSUMER.LIST.{admin_bus.stream}", b"{}"),
                                     "$JS.API.CONSUMER.LIST")
        assert len(reader._consumer) >= 16  # as unguessable as an inbox
    finally:
        await reader.close()


async def test_only_the_subscriber_changes_or_fetches_from_the_deployers_consumer(admin_bus: Bus, connect) -> None:
    subscriber = await connect(nats_users.SUBSCRIBER)
    await subscriber.nc.jetstream(timeout=10).pull_subscribe(
        f"{NAMESPACE}.run.*.adapter_saved", durable=DEPLOYER, stream=admin_bus.stream,
        config=api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT, ack_wait=60))
    config = (await admin_bus.js.consumer_info(admin_bus.stream, DEPLOYER)).config
    changed = json.dumps({"stream_name": admin_bus.stream,
                          "config": {**config.as_dict(), "max_deliver": 1, "filter_subject": f"{NAMESPACE}.x.>"}})
    for user in nats_users.SERVICES:
        connection = await connect(user)
        await connection.refused(connection.nc.request(f"$JS.API.CONSUMER.CREATE.{admin_bus.stream}.{DEPLOYER}",
                                                       changed.encode(), timeout=10), "$JS.API.CONSUMER.CREATE")
        await connection.refused(connection.nc.request(f"$JS.API.CONSUMER.MSG.NEXT.{admin_bus.stream}.{DEPLOYER}",
                                                       b'{"batch": 1}', timeout=10), "$JS.API.CONSUMER.MSG.NEXT")
    assert (await admin_bus.js.consumer_info(admin_bus.stream, DEPLOYER)).config.filter_subject == \
        f"{NAMESPACE}.run.*.adapter_saved"


async def test_an_event_is_stored_though_another_service_published_its_id_first(
        server: tuple[str, dict[str, str]], admin_bus: Bus, connect) -> None:
    """JetStream drops a message whose Nats-Msg-Id it has seen within the duplicate window on any
    subject, and event ids are foreseeable: the API could keep a trainer's events off the stream,
    or a trainer the API's cancel requests, by publishing their ids first on its own subjects."""
    url, users = server
    started, cancel = RunStarted(run_id="r1", attempt=1, trainer_id="t1"), RunCancelRequested(run_id="r1")
    await (await connect("api")).nc.jetstream().publish(f"{NAMESPACE}.dataset.d1.dataset_created", b"{}",
                                                         headers={"Nats-Msg-Id": started.idempotency_key()})
    await (await connect("trainer")).nc.jetstream().publish(f"{NAMESPACE}.run.r1.run_logged", b"{}",
                                                             headers={"Nats-Msg-Id": cancel.idempotency_key()})
    trainer, api_bus = [await Bus.connect(nats_users.user_url(url, user, users[user]), NAMESPACE,
                                          inbox_prefix=nats_users.inbox_prefix(user)) for user in ("trainer", "api")]
    try:
        stored = await trainer.publish(started)
        assert (await admin_bus.js.get_msg(admin_bus.stream, stored)).subject == started.subject(NAMESPACE)
        assert await trainer.stored_seq(started) == stored
        assert await trainer.publish(started) == stored  # a retry is still a duplicate
        requested = RunRequested(run_id="r1", experiment_id="e1", dataset_id="d1", name="run", config={})
        [_, stored] = await api_bus.publish_many([requested, cancel])
        assert (await admin_bus.js.get_msg(admin_bus.stream, stored)).subject == cancel.subject(NAMESPACE)
        assert await api_bus.publish_many([cancel]) == [stored]
    finally:
        for bus in (trainer, api_bus):
            await bus.close()


async def test_no_service_stores_its_bytes_as_another_services_event(
        server: tuple[str, dict[str, str]], admin_bus: Bus, connect) -> None:
    """The server sends a JetStream API answer to whatever reply subject the request names, which
    permissions do not check, and a stream stores it like any message on its subjects. A direct get
    answers with a stored message's bytes alone, so the API could store a clip holding a trainer's
    event and have it answered onto the trainer's subject. The answers left are JSON documents that
    no event envelope parses as."""
    url, users = server
    completed = RunCompleted(run_id="r1", attempt=1, final_loss=0.1, steps=1, seconds=1.0, adapter_id="a1")
    api_bus = await Bus.connect(nats_users.user_url(url, "api", users["api"]), NAMESPACE,
                                inbox_prefix=nats_users.inbox_prefix("api"))
    try:
        await api_bus.put_object(api_bus.clips_bucket, "forged.wav", encode(Envelope.wrap(completed)))
    finally:
        await api_bus.close()
    before = await admin_bus.last_seq()
    for user, bucket in (("api", admin_bus.clips_bucket), ("trainer", admin_bus.checkpoints_bucket),
                         ("generator", admin_bus.adapters_bucket), (nats_users.SUBSCRIBER, admin_bus.samples_bucket)):
        connection = await connect(user)
        for subject in (f"$JS.API.DIRECT.GET.OBJ_{bucket}", f"$JS.API.DIRECT.GET.OBJ_{bucket}.$O.{bucket}.C.x"):
            await connection.refused(connection.nc.publish(subject, json.dumps({"seq": 1, "no_hdr": True}).encode(),
                                                           reply=completed.subject(NAMESPACE)), "$JS.API.DIRECT.GET")
    assert await admin_bus.last_seq() == before


async def test_no_user_has_an_api_answer_stored(admin_bus: Bus, connect) -> None:
    """The server sends a JetStream API answer to whatever reply subject the request names, which
    permissions do not check. Each user but the admin is in an account of its own, so the answer
    goes to that subject in the requester's account, where no stream stores it: not even on a
    subject the user may publish on (the trainer's run_completed)."""
    streams = [admin_bus.stream, *(f"OBJ_{bucket}" for bucket in (admin_bus.clips_bucket, admin_bus.adapters_bucket,
                                                                   admin_bus.checkpoints_bucket, admin_bus.samples_bucket))]
    replies = [f"{NAMESPACE}.run.r1.run_completed", f"{NAMESPACE}.run.r1.run_requested",
               *(f"$O.{bucket}.C.x" for bucket in (admin_bus.clips_bucket, admin_bus.adapters_bucket,
                                                    admin_bus.checkpoints_bucket, admin_bus.samples_bucket))]
    for user in (*nats_users.SERVICES, nats_users.SUBSCRIBER):
        connection = await connect(user)
        for reply in replies:
            for request in ("$JS.API.INFO", f"$JS.API.STREAM.INFO.{admin_bus.stream}"):
                await connection.nc.publish(request, b"", reply=reply)
        await connection.nc.jetstream().account_info()  # answered after those above, which had time to be stored
        assert connection.errors.empty()
    for stream in streams:
        assert (await admin_bus.js.stream_info(stream)).state.last_seq == 0, stream


async def test_a_message_among_an_uploads_chunks_makes_it_upload_again(
        server: tuple[str, dict[str, str]], admin_bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    """An API answer can be stored on an in-flight upload's chunk subject, which can be learnt from
    the bucket's stream info: by any user of a server where all share JetStream's account, here by the
    admin; the object's reference would then read a corrupted object."""
    url, users = server
    names = iter(["foreseen", "f" * 22])
    monkeypatch.setattr(objects, "_new_nuid", lambda: next(names))
    await admin_bus.nc.publish(f"$JS.API.STREAM.INFO.{admin_bus.stream}", b"",
                               reply=f"$O.{admin_bus.adapters_bucket}.C.foreseen")
    await admin_bus.nc.flush()
    trainer = await Bus.connect(nats_users.user_url(url, "trainer", users["trainer"]), NAMESPACE,
                                inbox_prefix=nats_users.inbox_prefix("trainer"))
    try:
        adapter = await trainer.put_object(trainer.adapters_bucket, "r1.zip", b"adapter bytes")
    finally:
        await trainer.close()
    assert await admin_bus.get_object(adapter) == b"adapter bytes"


async def test_an_answer_sent_to_a_cancel_subject_cancels_nothing(
        server: tuple[str, dict[str, str]], admin_bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    """An API answer can be stored on, and sent to, the subject a worker hears cancels on: by any
    user of a server where all share JetStream's account, here by the admin; only an event there is one."""
    url, users = server
    monkeypatch.setattr(cancels, "LOOK_INTERVAL", 0.1)
    cancel = RunCancelRequested(run_id="r1")
    trainer = await Bus.connect(nats_users.user_url(url, "trainer", users["trainer"]), NAMESPACE,
                                inbox_prefix=nats_users.inbox_prefix("trainer"))
    try:
        for watched in ("before", "while"):
            cancelled = asyncio.Event()
            async with cancels.watching(trainer, [cancel.subject(NAMESPACE)], cancelled):
                if watched == "while":
                    await admin_bus.nc.publish("$JS.API.INFO", b"", reply=cancel.subject(NAMESPACE))
                await asyncio.sleep(0.5)  # a few looks in the stream
                assert not cancelled.is_set()
                if watched == "before":
                    await admin_bus.nc.publish("$JS.API.INFO", b"", reply=cancel.subject(NAMESPACE))
                    await admin_bus.nc.flush()
        assert await admin_bus.last_seq() == 2  # both answers are stored
        cancelled = asyncio.Event()
        async with cancels.watching(trainer, [cancel.subject(NAMESPACE)], cancelled):
            await admin_bus.publish(cancel)
            await asyncio.wait_for(cancelled.wait(), timeout=20)
    finally:
        await trainer.close()


async def test_an_answer_sent_to_a_datasets_subject_does_not_make_it_unreadable(admin_bus: Bus) -> None:
    """A trainer refuses to export a dataset with an event it cannot read; an API answer stored on
    the dataset's subjects (by any user of a server where all share JetStream's account, here by the
    admin) is no event, and leaves the dataset as it was."""
    added = ClipAdded(dataset_id="d1", clip_id="c1", prompt="a tone",
                      audio=AudioFile(bucket=admin_bus.clips_bucket, name="c1.wav", sha256="a" * 64, size=1,
                                      filename="c1.wav", format="wav", duration_seconds=1.0, sample_rate=32000,
                                      channels=1))
    await admin_bus.publish(added)
    await admin_bus.nc.publish("$JS.API.INFO", b"", reply=added.subject(NAMESPACE))
    await admin_bus.nc.flush()
    history = await admin_bus.history("dataset", "d1", needed=(ClipAdded.event_name(),))
    assert [stored.event for stored in history] == [added]
    assert await admin_bus.last_seq() == 2  # the answer is stored, and passed over


async def test_no_service_says_another_services_event_on_a_subject_of_its_own(admin_bus: Bus, connect) -> None:
    """Permissions say who may publish on which subject, not what: the API may publish on a run's
    request subject, and an envelope there saying the run completed is no event."""
    completed = RunCompleted(run_id="r1", attempt=1, final_loss=0.1, steps=1, seconds=1.0, adapter_id="a1")
    api = await connect("api")
    await api.nc.jetstream().publish(f"{NAMESPACE}.run.r1.run_requested", encode(Envelope.wrap(completed)))

    assert await admin_bus.history("run", "r1") == []
    with pytest.raises(UndecodableEvent, match="which is not its subject"):
        await admin_bus.history("run", "r1", needed=("run_requested",))
