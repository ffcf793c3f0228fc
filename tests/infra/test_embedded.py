"""The private servers `cadenza up` and the tests start when no NATS_URL / DATABASE_URL is set."""
import os
import signal
import time
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.js.api import StreamConfig

from services.embedded import EmbeddedServerError, start_nats, start_postgres


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "data" / "postmaster.pid").read_text().split()[0])


async def test_nats_keeps_its_streams_across_a_restart(data_dir: Path) -> None:
    server = start_nats(data_dir)
    connection = await nats.connect(server.url)
    js = connection.jetstream()
    await js.add_stream(StreamConfig(name="KEPT", subjects=["kept.>"]))
    await js.publish("kept.one", b"still here")
    await connection.close()
    server.stop()
    assert server.process.poll() is not None

    server = start_nats(data_dir)
    try:
        connection = await nats.connect(server.url)
        message = await connection.jetstream().get_msg("KEPT", 1)
        await connection.close()
    finally:
        server.stop()
    assert message.data == b"still here"


async def test_postgres_keeps_its_rows_across_a_restart(data_dir: Path) -> None:
    server = start_postgres(data_dir, fsync=False)
    assert server.url.endswith("/cadenza")
    connection = await asyncpg.connect(server.url)
    await connection.execute("CREATE TABLE notes (text text); INSERT INTO notes VALUES ('still here')")
    await connection.close()
    pid = postmaster_pid(data_dir)
    server.stop()
    assert not alive(pid)

    server = start_postgres(data_dir, fsync=False)
    try:
        connection = await asyncpg.connect(server.url)
        assert await connection.fetchval("SELECT text FROM notes") == "still here"
        await connection.close()
    finally:
        server.stop()


async def test_postgres_starts_again_after_a_crash(data_dir: Path) -> None:
    server = start_postgres(data_dir, fsync=False)
    connection = await asyncpg.connect(server.url)
    await connection.execute("CREATE TABLE notes (text text); INSERT INTO notes VALUES ('committed')")
    await connection.close()
    os.kill(postmaster_pid(data_dir), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(postmaster_pid(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)

    server = start_postgres(data_dir, fsync=False)
    try:
        connection = await asyncpg.connect(server.url)
        assert await connection.fetchval("SELECT text FROM notes") == "committed"
        await connection.close()
    finally:
        server.stop()


def test_a_second_server_on_the_same_data_is_refused(data_dir: Path) -> None:
    nats_server = start_nats(data_dir)
    postgres = start_postgres(data_dir, fsync=False)
    try:
        with pytest.raises(EmbeddedServerError, match="already uses"):
            start_nats(data_dir)
        with pytest.raises(EmbeddedServerError, match="already runs"):
            start_postgres(data_dir, fsync=False)
    finally:
        postgres.stop()
        nats_server.stop()
