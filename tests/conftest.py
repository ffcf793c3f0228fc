"""Fixtures every test can use: real NATS and PostgreSQL servers, and per test a namespace and a
database of its own on them.

With NATS_URL / DATABASE_URL set the tests use those servers (CI machines are reused, so nothing a
test creates may leak into the next run); otherwise private servers are started for the session.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import pytest

import events.bus
from events.bus import Bus
from fault_injection import RestartablePostgres
from services.registry.projector import run_projector
from services.embedded import nats_server_binary, start_missing
from services.settings import Settings


@dataclass(frozen=True)
class Servers:
    nats_url: str
    database_url: str  # an admin URL: its user may create and drop databases


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="cadenza-test-"))
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        nats_url, database_url = start_missing(
            os.environ.get("NATS_URL", ""), os.environ.get("DATABASE_URL", ""), data_dir, stack, fsync=False)
        yield Servers(nats_url=nats_url, database_url=database_url)


@contextmanager
def isolated_settings(servers: Servers, data_dir: Path, model_dirs: tuple[Path, ...]) -> Iterator[Settings]:
    """Settings with a unique namespace on NATS and a fresh, empty database, both removed when the
    block ends; base models may come from `model_dirs`."""
    namespace = f"t{uuid.uuid4().hex[:12]}"
    database = f"cadenza_{namespace}"
    in_thread(_execute(servers.database_url, f'CREATE DATABASE "{database}"'))
    try:
        yield Settings(
            nats_url=servers.nats_url,
            database_url=database_url_for(servers.database_url, database),
            namespace=namespace,
            data_dir=data_dir / "data",
            cache_dir=data_dir / "cache",
            model_dirs=model_dirs,
        )
    finally:
        in_thread(_execute(servers.database_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        in_thread(delete_namespace(servers.nats_url, namespace))


@pytest.fixture
def settings(servers: Servers, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings for one test (see isolated_settings); base models from pytest's folders (tiny_model)."""
    with isolated_settings(servers, tmp_path, (tmp_path_factory.getbasetemp(),)) as settings:
        yield settings


@pytest.fixture(scope="session")
def session_settings(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings shared by a whole session's tests, for a stack started once (the browser tests)."""
    with isolated_settings(servers, tmp_path_factory.mktemp("session"), (tmp_path_factory.getbasetemp(),)) as settings:
        yield settings


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    """A connection to the test's namespace, with its stream and buckets declared."""
    bus = await Bus.connect(settings.nats_url, settings.namespace)
    await bus.ensure()
    yield bus
    await bus.close()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random MusicGen saved like a hub model and loaded through the same code (model.tiny).
    Built on one thread: its weights (k-means codebooks, calibration) depend on the reduction order,
    so the same model comes out whichever test asks for it first."""
    import torch  # only for the tests that use it

    from model.tiny import build_tiny_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build_tiny_model(tmp_path_factory.mktemp("tiny-musicgen") / "model").absolute()
    finally:
        torch.set_num_threads(threads)


class RestartableNats:
    """A private nats-server that comes back on the same port with the same JetStream store, for
    tests of what survives a server restart (pull subscriptions can die with the server)."""

    def __init__(self, store: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.store = store
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            self.process.wait(10)

    def hang(self) -> None:
        """SIGSTOP the server: connections stay open and nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def restartable_nats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RestartableNats]:
    """With a short wait for each publish's ack and NATS request (buses connected during the test),
    so that an outage outlasting it costs the test seconds."""
    monkeypatch.setattr(events.bus, "REQUEST_TIMEOUT", 2.0)
    server = RestartableNats(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Path]:
    """A stopped PostgreSQL cluster holding the `cadenza` database, made once: initdb takes seconds,
    a copy of its folder a fraction of one."""
    # Not under pytest's tmp_path: as root PostgreSQL runs as `postgres`, which cannot enter it.
    data_dir = Path(tempfile.mkdtemp(prefix="cadenza-cluster-"))
    server = RestartablePostgres(data_dir)
    server.start()
    server.stop()
    yield data_dir / "postgres" / "data"
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def restartable_postgres(postgres_cluster: Path) -> Iterator[RestartablePostgres]:
    """A private PostgreSQL of the test's own, on a copy of `postgres_cluster`."""
    data_dir = Path(tempfile.mkdtemp(prefix="cadenza-faults-"))
    shutil.copytree(postgres_cluster, data_dir / "postgres" / "data", symlinks=True)
    server = RestartablePostgres(data_dir)
    server.start()
    yield server
    server.resume()
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def fault_settings(settings: Settings, restartable_postgres: RestartablePostgres) -> Settings:
    """The test's namespace on the shared NATS, its database on the restartable PostgreSQL, and a
    short database timeout so that a hung server costs the test seconds."""
    return replace(settings, database_url=restartable_postgres.url, database_timeout=2.0)


@pytest.fixture
async def registry(fault_settings: Settings) -> AsyncIterator[asyncio.Task]:
    """The projector, folding in the background for the whole test; it must never end by itself."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_projector(fault_settings, stop))
    yield task
    assert not task.done(), f"the projector ended: {task.exception() if not task.cancelled() else 'cancelled'}"
    stop.set()
    await asyncio.wait_for(task, timeout=60)


def database_url_for(url: str, database: str) -> str:
    """`url` pointing at another database on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


async def delete_namespace(nats_url: str, namespace: str) -> None:
    """Delete the namespace's stream and buckets (object stores and key-value buckets are streams
    too). The stream denies deleting messages, not deleting the whole stream."""
    connection = await nats.connect(nats_url)
    try:
        js = connection.jsm()
        for info in await js.streams_info():
            if namespace.lower() in info.config.name.lower():
                await js.delete_stream(info.config.name)
    finally:
        await connection.close()


def in_thread(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion on its own loop, from sync code that may be called while the
    tests' session loop exists (it must not be disturbed)."""
    with ThreadPoolExecutor(1) as executor:
        return executor.submit(asyncio.run, coroutine).result()


async def _execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
