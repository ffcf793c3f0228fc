"""For fault tests: a private PostgreSQL to stop (`pg_ctl stop -m fast`), hang (SIGSTOP) and bring
back on the same port (its fixtures, and `RestartableNats`, are in conftest.py), a proxy that cuts one
client off a server, and the check each fault test ends with: the read models equal a clean rebuild."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from services.embedded import EmbeddedPostgres, start_postgres
from services.registry.rebuild import READ_MODELS, rebuild
from services.settings import Settings

Digest = dict[str, tuple[int, str]]


class RestartablePostgres:
    """A private PostgreSQL that comes back on the same port with the same data."""

    def __init__(self, data_dir: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.data_dir = data_dir
        self.server: EmbeddedPostgres | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/cadenza"

    def start(self) -> None:
        self.server = start_postgres(self.data_dir, fsync=False, port=self.port)

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: open transactions are rolled back, connections closed."""
        if self.server:
            self.server.stop()

    def _processes(self) -> list[int]:
        """The postmaster first, then every backend it forked."""
        postmaster = int((self.data_dir / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
        children = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass
        return [postmaster, *children]

    def hang(self) -> None:
        """SIGSTOP the whole server: connections stay open and nothing answers."""
        self._signal(signal.SIGSTOP, self._processes())

    def resume(self) -> None:
        if self.server is None or not (self.data_dir / "postgres" / "data" / "postmaster.pid").exists():
            return
        self._signal(signal.SIGCONT, reversed(self._processes()))

    @staticmethod
    def _signal(signum: int, pids) -> None:
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:  # a backend that ended meanwhile
                pass


async def read_digest(database_url: str) -> Digest:
    """Per read model (and the checkpoint): its row count and the md5 of all its rows in order."""
    connection = await asyncpg.connect(database_url)
    try:
        result = {}
        for table in (*READ_MODELS, "projector_checkpoint"):
            result[table] = tuple(await connection.fetchrow(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"))
        return result
    finally:
        await connection.close()


async def assert_equal_to_a_clean_rebuild(settings: Settings) -> None:
    """The read models as folded through the faults equal those a rebuild folds from sequence 1."""
    survived = await read_digest(settings.database_url)
    await rebuild(settings)
    assert await read_digest(settings.database_url) == survived


async def until(condition, what: str, timeout: float = 120.0, every: float = 0.2):
    """Poll `condition()` (sync or async) until it returns something truthy; a liveness bound only."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            value = condition()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
        except Exception:  # the server is still coming back
            if loop.time() > deadline:
                raise
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(every)


async def checkpoint(database_url: str) -> int:
    connection = await asyncpg.connect(database_url, timeout=2)
    try:
        return await connection.fetchval("SELECT coalesce(max(last_seq), 0) FROM projector_checkpoint")
    finally:
        await connection.close()


async def until_folded(settings: Settings) -> None:
    """Until the registry has folded the stream as far as it goes now: a registry still running
    then moves nothing under `assert_equal_to_a_clean_rebuild`."""
    bus = await settings.connect_bus()
    try:
        last = await bus.last_seq()
    finally:
        await bus.close()
    await until(lambda: _folded_to(settings.database_url, last), "the registry folding the whole stream")


async def _folded_to(database_url: str, seq: int) -> bool:
    return await checkpoint(database_url) >= seq


class CuttableProxy:
    """A TCP proxy to a server, for one client's connection to be cut while others' stay: `cut()`
    closes the connections through it and refuses new ones until `restore()`."""

    def __init__(self, target_url: str) -> None:
        target = urlsplit(target_url)
        self.target = (target.hostname, target.port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"nats://127.0.0.1:{self.port}"
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self.server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)

    async def cut(self) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    async def _connect(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        self.writers |= {client_writer, server_writer}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
