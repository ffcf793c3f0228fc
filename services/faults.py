"""The one fault policy of every service: which errors are passing trouble (a server restarting,
stopped or hung) and how long to wait before trying again.

Transient errors are retried with a backoff that doubles up to a ceiling; anything else (a bug, a
refused request, a schema the code does not expect) is raised at once, since trying again would
only repeat it. The registry retries for as long as it runs, workers for a bounded time (then the
attempt fails), and the API does not wait at all: it answers 503 with `Retry-After`.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import nats.errors

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT: tuple[type[BaseException], ...] = (
    nats.errors.Error,  # disconnected, no responders, timeouts, a consumer lost in a server restart
    TimeoutError,  # a command or connect timeout (asyncio's is the builtin), an unacknowledged publish
    OSError,  # connection refused or reset
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # the connection was closed under a command
    asyncpg.InternalClientError,  # e.g. "cannot switch to state 15" on a connection the server dropped
    asyncpg.OperatorInterventionError,  # admin shutdown, "the database system is starting up", cancelled
)


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT)


@dataclass
class Backoff:
    """Delays that double from `first` to `ceiling` seconds with each failure in a row."""

    first: float = 0.2
    ceiling: float = 5.0
    failures: int = 0

    def reset(self) -> None:
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        return min(self.first * 2 ** (self.failures - 1), self.ceiling)

    async def wait(self, stop: asyncio.Event | None = None) -> None:
        """Sleep the next delay, or less if `stop` is set meanwhile."""
        delay = self.next_delay()
        if stop is None:
            await asyncio.sleep(delay)
            return
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass


async def retry(operation: Callable[[], Awaitable[T]], what: str, give_up_after: float) -> T:
    """`await operation()` until it succeeds, retrying transient errors with a `Backoff` for at most
    `give_up_after` seconds, after which the last one is raised. Other errors are raised at once.
    `operation` must be safe to repeat (publishes are: the stream drops duplicates)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after
    backoff = Backoff()
    while True:
        try:
            return await operation()
        except TRANSIENT as error:
            if loop.time() >= deadline:
                raise
            log.warning("%s failed (%s: %s); trying again", what, type(error).__name__, error)
            await backoff.wait()
