"""`cadenza up`: the whole system in one process, on private servers unless it is told where the
servers are. Each test runs the real command, as a user would."""
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from services.settings import Settings

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(**variables: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in ("NATS_URL", "DATABASE_URL")}
    # Every test stops `cadenza up`, whose idle workers each wait out their pending fetch first.
    short_fetches = {"CADENZA_TRAINER_FETCH_TIMEOUT": "0.3", "CADENZA_GENERATOR_FETCH_TIMEOUT": "0.3"}
    return env | short_fetches | variables


def processes_using(path: Path, besides: int) -> list[str]:
    """Command lines of the running processes (other than `besides`) that mention `path`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == besides:
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in command:
            found.append(command)
    return found


@contextmanager
def cadenza_up(data_dir: Path, env: dict[str, str], *arguments: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start `cadenza up [arguments]` and yield it with the API URL it printed; kill it if a test left
    it running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "services", "up", "--data-dir", str(data_dir), "--port", str(free_port()), *arguments],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield process, api_url(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def api_url(process: subprocess.Popen, timeout: float = 60) -> str:
    """The URL from the `Cadenza API: <url>` line, reading the output until it appears."""
    output = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline and selector.select(deadline - time.monotonic()):
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if line.startswith("Cadenza API: "):
                return line.split()[2]
    raise AssertionError("cadenza up printed no API URL:\n" + "".join(output))


def stop(process: subprocess.Popen, signum: int) -> int:
    process.send_signal(signum)
    return process.wait(timeout=60)


def test_up_runs_everything_on_private_servers_and_finds_its_data_again(data_dir: Path) -> None:
    with cadenza_up(data_dir, environment()) as (process, url):
        assert httpx.get(f"{url}/docs").status_code == 200
        created = httpx.post(f"{url}/api/datasets", json={"name": "drum loops", "kind": "supervised"})
        assert created.status_code == 201
        running = processes_using(data_dir, besides=process.pid)
        assert any("nats-server" in command for command in running)
        assert any("postgres" in command for command in running)

        assert stop(process, signal.SIGINT) == 0
        assert processes_using(data_dir, besides=process.pid) == []

    with cadenza_up(data_dir, environment()) as (process, url):
        datasets = httpx.get(f"{url}/api/datasets").json()
        assert [dataset["name"] for dataset in datasets] == ["drum loops"]

        assert stop(process, signal.SIGTERM) == 0
        assert processes_using(data_dir, besides=process.pid) == []


def test_up_uses_the_servers_it_is_given_and_starts_none(settings: Settings, data_dir: Path) -> None:
    env = environment(NATS_URL=settings.nats_url, DATABASE_URL=settings.database_url,
                      CADENZA_NAMESPACE=settings.namespace)
    with cadenza_up(data_dir, env) as (process, url):
        assert httpx.get(f"{url}/api/datasets").json() == []
        assert processes_using(data_dir, besides=process.pid) == []
        # The generation worker in it loads a hub id that names a folder in the working directory
        # from there: it runs in an empty folder of its own, not where it was started.
        working_directory = Path(os.readlink(f"/proc/{process.pid}/cwd"))
        assert working_directory != ROOT and list(working_directory.iterdir()) == []
        assert stop(process, signal.SIGINT) == 0
    assert not (data_dir / "nats").exists() and not (data_dir / "postgres").exists()
