"""Runs services side by side in one process, restarts one that fails, stops them all on a signal.

A service is an async function of the settings and a stop event: it runs until the event is set.
One that raises or returns before that has failed; it is logged and started again after a backoff
that doubles with each consecutive failure. A service that stayed up for `healthy_after` seconds
starts counting afresh, so only a service that keeps failing makes the process exit.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from services.settings import Settings

Service = Callable[[Settings, asyncio.Event], Awaitable[None]]

log = logging.getLogger("cadenza")


@dataclass(frozen=True)
class RestartPolicy:
    max_failures: int = 5  # consecutive failures of one service before the process gives up
    first_backoff: float = 1.0  # seconds before the first restart; doubled after each further failure
    max_backoff: float = 30.0
    healthy_after: float = 60.0  # seconds up after which a service's failure count starts again

    def backoff(self, failures: int) -> float:
        return min(self.first_backoff * 2 ** (failures - 1), self.max_backoff)


async def _supervise(name: str, service: Service, settings: Settings, stop: asyncio.Event,
                     policy: RestartPolicy) -> bool:
    """Run `service` until `stop`, restarting it as `policy` says; False if it kept failing (then
    `stop` is set for the others) or failed while stopping."""
    loop = asyncio.get_running_loop()
    failures = 0
    while not stop.is_set():
        started = loop.time()
        try:
            await service(settings, stop)
        except Exception:
            if stop.is_set():
                log.exception("%s failed while stopping", name)
                return False
            log.exception("%s failed", name)
        else:
            if stop.is_set():
                return True
            log.error("%s stopped on its own", name)
        if loop.time() - started >= policy.healthy_after:
            failures = 0
        failures += 1
        if failures >= policy.max_failures:
            log.error("%s failed %d times in a row; stopping everything", name, failures)
            stop.set()
            return False
        delay = policy.backoff(failures)
        log.warning("restarting %s in %.1f s (failure %d of %d)", name, delay, failures, policy.max_failures)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass


async def run_services(settings: Settings, services: dict[str, Service],
                       policy: RestartPolicy = RestartPolicy()) -> int:
    """Run the services until SIGINT/SIGTERM, restarting any that fails. Returns the exit status:
    0 after a signal, 1 when a service kept failing (the others are stopped first)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        clean = await asyncio.gather(*(_supervise(name, service, settings.for_service(name), stop, policy)
                                       for name, service in services.items()))
        return 0 if all(clean) else 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


# Working directories are named `cadenza-workdir-<pid>-<random>`, so that one whose process was
# killed before it could remove it can be told from one in use.
_WORKDIR_PREFIX = "cadenza-workdir-"


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def remove_abandoned_folders(parent: Path) -> None:
    """Remove the empty working directories in `parent` (`in_empty_folder`) whose process is gone,
    as after a `kill -9`. One whose process lives, or that holds anything, is left; so is one
    named without a pid, as its owner cannot be told. A pid taken again by another process keeps
    its folder: a folder left over, never one removed under a live process."""
    for folder in parent.glob(f"{_WORKDIR_PREFIX}*-*"):
        pid, _, _ = folder.name.removeprefix(_WORKDIR_PREFIX).partition("-")
        if not pid.isdigit() or _is_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):  # not empty, another user's, or just removed by another worker
            folder.rmdir()


@contextlib.contextmanager
def in_empty_folder() -> Iterator[None]:
    """Make a new, empty, private folder the process's working directory for the block; it is
    removed afterwards. For the commands that run services, never for a service itself: a base
    model's hub id that names a folder relative to the working directory is loaded by transformers
    from that folder, so clients could otherwise load, or learn of, folders wherever the command was
    started. Every configured path must be absolute by then (the settings' `from_env` make them so).
    Empty ones left by killed processes are removed first (`remove_abandoned_folders`)."""
    started_in = os.getcwd()
    remove_abandoned_folders(Path(tempfile.gettempdir()))
    folder = Path(tempfile.mkdtemp(prefix=f"{_WORKDIR_PREFIX}{os.getpid()}-"))
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(started_in)
        with contextlib.suppress(OSError):  # something wrote into it after all: leave it
            folder.rmdir()


def run_alone(name: str, service: Service) -> int:
    """The command line of one worker service on its own (`cadenza trainer`, `cadenza generator`):
    it needs NATS_URL, logs to stderr, and runs supervised until a signal."""
    settings = Settings.from_env()
    if not settings.nats_url:
        print(f"the {name} needs NATS_URL", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with in_empty_folder():
        return asyncio.run(run_services(settings, {name: service}))
