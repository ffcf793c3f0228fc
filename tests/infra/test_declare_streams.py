"""An installation whose streams a release changed, on a private nats-server with Cadenza's users as
compose.yaml runs it: the services may not change the streams' settings and say so at once, and
`cadenza declare` as admin brings them to this release's."""
from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest
from nats.aio.msg import Msg

from events import objects
from events.bus import REQUEST_TIMEOUT, Bus, StreamSettingsDiffer
from events.urls import redacted
from services import nats_users
from tests.infra.test_commands import cadenza
from tests.serving import free_port
from tests.infra.test_nats_users import NAMESPACE, server  # noqa: F401 (a fixture)


async def as_admin(url: str, users: dict[str, str]) -> Bus:
    return await Bus.connect(nats_users.user_url(url, nats_users.ADMIN, users[nats_users.ADMIN]), NAMESPACE)


async def buckets_allowing_rollups(url: str, users: dict[str, str]) -> list[str]:
    admin = await as_admin(url, users)
    try:
        return [bucket for bucket in admin.buckets
                if (await admin.js.stream_info(objects.stream_config(bucket).name)).config.allow_rollup_hdrs]
    finally:
        await admin.close()


async def installed_by_an_earlier_release(url: str, users: dict[str, str]) -> tuple[str, ...]:
    """The stream and buckets as a release whose buckets allowed rollups declared them; the buckets."""
    admin = await as_admin(url, users)
    try:
        await admin.js.add_stream(admin.stream_config())
        for bucket in admin.buckets:
            await admin.js.add_stream(dataclasses.replace(objects.stream_config(bucket), allow_rollup_hdrs=True))
        return admin.buckets
    finally:
        await admin.close()


async def service_bus(url: str, users: dict[str, str], service: str) -> Bus:
    return await Bus.connect(nats_users.user_url(url, service, users[service]), NAMESPACE,
                             inbox_prefix=nats_users.inbox_prefix(service))


async def test_a_service_refused_a_changed_stream_says_so_at_once_and_declare_as_admin_changes_it(
        server: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, users = server
    buckets = await installed_by_an_earlier_release(url, users)
    assert await buckets_allowing_rollups(url, users) == list(buckets)

    api = await service_bus(url, users, "api")
    try:
        started = time.monotonic()
        with pytest.raises(StreamSettingsDiffer) as refused:
            await api.ensure()
        assert time.monotonic() - started < REQUEST_TIMEOUT / 5  # the refusal, not the request's timeout
    finally:
        await api.close()
    message = str(refused.value)
    assert f"stream OBJ_{buckets[0]}'s settings differ from this release" in message
    assert "`cadenza declare` as the NATS user admin" in message and "`cadenza up`" in message
    assert await buckets_allowing_rollups(url, users) == list(buckets)  # the service changed nothing

    # what compose.yaml's declare-streams runs: the admin's password alone, from its own file
    nats_users.write_user_passwords(tmp_path / "nats", users)
    result = await asyncio.to_thread(
        cadenza, "declare", NATS_URL=url.replace("://", f"://{nats_users.ADMIN}@"),
        CADENZA_NATS_PASSWORD_FILE=str(tmp_path / "nats" / nats_users.ADMIN / nats_users.PASSWORD_FILE),
        CADENZA_NAMESPACE=NAMESPACE)
    assert result.returncode == 0, result.stderr
    assert await buckets_allowing_rollups(url, users) == []

    for service in nats_users.SERVICES:
        bus = await service_bus(url, users, service)
        try:
            await bus.ensure()
        finally:
            await bus.close()


async def test_declare_says_in_one_line_why_it_failed(
        server: tuple[str, dict[str, str]]) -> None:
    url, users = server
    buckets = await installed_by_an_earlier_release(url, users)

    as_a_service = await asyncio.to_thread(
        cadenza, "declare", NATS_URL=nats_users.user_url(url, "api", users["api"]),
        CADENZA_NATS_INBOX_PREFIX=nats_users.inbox_prefix("api"), CADENZA_NAMESPACE=NAMESPACE)
    wrong_password = await asyncio.to_thread(
        cadenza, "declare", NATS_URL=nats_users.user_url(url, nats_users.ADMIN, "not-the-password"),
        CADENZA_NAMESPACE=NAMESPACE)
    nowhere = await asyncio.to_thread(cadenza, "declare")
    unreachable = f"nats://admin:{users[nats_users.ADMIN]}@127.0.0.1:{free_port()}"  # nothing listens there
    no_answer = await asyncio.to_thread(cadenza, "declare", "--timeout", "1", NATS_URL=unreachable)
    for bad in ("0", "nan", "-1"):
        refused = await asyncio.to_thread(cadenza, "declare", "--timeout", bad, NATS_URL=unreachable)
        assert refused.returncode == 2 and "--timeout: must be above 0 seconds and finite" in refused.stderr, bad

    assert as_a_service.returncode == 1
    assert as_a_service.stderr.splitlines()[-1].startswith(
        f"cadenza declare: StreamSettingsDiffer: stream OBJ_{buckets[0]}'s settings differ")
    assert wrong_password.returncode == 1
    assert wrong_password.stderr.splitlines()[-1].startswith("cadenza declare: NatsCredentialsError: ")
    assert "refused the credentials" in wrong_password.stderr.splitlines()[-1]
    assert (nowhere.returncode, nowhere.stderr.splitlines()[-1]) == (
        2, "cadenza declare needs NATS_URL (`cadenza up` declares its private server's itself)")
    assert (no_answer.returncode, no_answer.stderr.splitlines()[-1]) == (
        1, f"cadenza declare: no answer from NATS at {redacted(unreachable)} within 1 s")
    for result in (as_a_service, wrong_password, no_answer):
        assert "Traceback" not in result.stderr
        assert users[nats_users.ADMIN] not in result.stderr
    assert await buckets_allowing_rollups(url, users) == list(buckets)


async def test_a_service_declares_unchanged_streams_with_create_requests_alone(
        server: tuple[str, dict[str, str]]) -> None:
    """A service starting against streams that have this release's settings costs the server one
    request per stream, answered at once."""
    url, users = server
    admin = await as_admin(url, users)
    await admin.ensure()
    requests: list[str] = []

    async def heard(message: Msg) -> None:
        requests.append(message.subject)

    watching = await admin.nc.subscribe("$JS.API.>", cb=heard)
    trainer = await service_bus(url, users, "trainer")
    try:
        await trainer.ensure()
    finally:
        await trainer.close()
    await admin.nc.flush()
    await watching.unsubscribe()
    await admin.close()
    assert sorted(requests) == sorted(f"$JS.API.STREAM.CREATE.{name}" for name in (
        trainer.stream, *(objects.stream_config(bucket).name for bucket in trainer.buckets)))
