"""The supervisor of `cadenza up`: a failing service is restarted with backoff; the process ends on
a signal (status 0) or when a service keeps failing (status 1)."""
import asyncio
import logging
import os
import signal

import pytest

from services.settings import Settings
from services.supervisor import RestartPolicy, run_services

QUICK = RestartPolicy(max_failures=3, first_backoff=0.01, max_backoff=0.02, healthy_after=60.0)
SETTINGS = Settings.from_env()


async def test_a_service_that_fails_once_is_restarted_and_runs_until_a_signal(caplog: pytest.LogCaptureFixture) -> None:
    starts = []
    running = asyncio.Event()

    async def flaky(settings: Settings, stop: asyncio.Event) -> None:
        starts.append(len(starts) + 1)
        if len(starts) == 1:
            raise RuntimeError("lost the database")
        running.set()
        await stop.wait()

    async def steady(settings: Settings, stop: asyncio.Event) -> None:
        await stop.wait()

    async def signal_when_running() -> None:
        await running.wait()
        os.kill(os.getpid(), signal.SIGTERM)

    signaller = asyncio.create_task(signal_when_running())
    with caplog.at_level(logging.WARNING, logger="cadenza"):
        status = await run_services(SETTINGS, {"flaky": flaky, "steady": steady}, QUICK)
    await signaller
    assert status == 0
    assert starts == [1, 2]
    assert "flaky failed" in caplog.text and "lost the database" in caplog.text
    assert "restarting flaky in" in caplog.text
    assert "steady" not in caplog.text


async def test_a_service_that_always_fails_stops_everything_with_status_1(caplog: pytest.LogCaptureFixture) -> None:
    starts = []
    steady_stopped = asyncio.Event()

    async def broken(settings: Settings, stop: asyncio.Event) -> None:
        starts.append(1)
        raise RuntimeError("bad configuration")

    async def steady(settings: Settings, stop: asyncio.Event) -> None:
        await stop.wait()
        steady_stopped.set()

    with caplog.at_level(logging.WARNING, logger="cadenza"):
        status = await run_services(SETTINGS, {"broken": broken, "steady": steady}, QUICK)
    assert status == 1
    assert len(starts) == QUICK.max_failures
    assert steady_stopped.is_set()
    assert "broken failed 3 times in a row" in caplog.text


async def test_a_service_that_returns_on_its_own_counts_as_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    async def quitter(settings: Settings, stop: asyncio.Event) -> None:
        return

    with caplog.at_level(logging.WARNING, logger="cadenza"):
        assert await run_services(SETTINGS, {"quitter": quitter}, QUICK) == 1
    assert caplog.text.count("quitter stopped on its own") == QUICK.max_failures


def test_backoff_doubles_up_to_its_ceiling() -> None:
    policy = RestartPolicy(first_backoff=1.0, max_backoff=5.0)
    assert [policy.backoff(failures) for failures in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
