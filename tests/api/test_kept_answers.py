"""Answers kept between requests (a run's metrics, its events) are served again only while what
they were built from is unchanged: a change to the read models or to the stream shows at once."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from events.catalogue import LossReported, RunLogged, RunRequested
from model.training.config import TrainingConfig
from services.api.answers import ENTRY_BYTES, Answers
from services.registry import list_dead_letters, wait_until_projected
from services.registry.dead_letters import replay


def losses(run_id: str, steps: range) -> list[LossReported]:
    return [LossReported(run_id=run_id, attempt=1, step=step, epoch=step / 100, loss=1.0 / (step + 1)) for step in steps]


async def test_kept_metrics_are_refreshed_once_new_points_are_projected(api, client, observer_bus, settings):
    run = await api.run((await api.supervised_experiment())["id"])
    url = f"/api/runs/{run['id']}/metrics"
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=1) as pool:
        await wait_until_projected(pool, max(await observer_bus.publish_many(losses(run["id"], range(3)))))
        for _ in range(2):  # the second is the kept answer
            assert [point["step"] for point in (await client.get(url)).json()] == [0, 1, 2]
            assert len((await client.get(url, params={"max_points": 4})).json()) == 3

        await wait_until_projected(pool, max(await observer_bus.publish_many(losses(run["id"], range(3, 9)))))
        assert [point["step"] for point in (await client.get(url)).json()] == list(range(9))
        downsampled = [point["step"] for point in (await client.get(url, params={"max_points": 4})).json()]
        assert len(downsampled) <= 4 and downsampled[0] == 0 and downsampled[-1] == 8


async def test_kept_metrics_are_refreshed_once_a_dead_letter_is_replayed(api, client, observer_bus, settings):
    """A replay changes the read models without moving the checkpoint."""
    experiment = await api.supervised_experiment()
    config = TrainingConfig(**(await api.run(experiment["id"]))["config"])
    # points of a run the read models do not know yet: parked
    [parked_seq] = await observer_bus.publish_many(losses("late-run", range(1)))
    requested = RunRequested(run_id="late-run", experiment_id=experiment["id"], dataset_id=experiment["dataset_id"],
                             name="late", config=config)
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=1) as pool:
        await wait_until_projected(pool, await observer_bus.publish(requested))
        assert [letter.seq for letter in await list_dead_letters(pool)] == [parked_seq]
        for _ in range(2):
            assert (await client.get("/api/runs/late-run/metrics")).json() == []

        async with pool.acquire() as conn:
            await replay(conn, observer_bus, parked_seq)
    assert [point["step"] for point in (await client.get("/api/runs/late-run/metrics")).json()] == [0]


async def test_kept_events_are_refreshed_once_the_run_has_new_events(api, client, observer_bus):
    run = await api.run((await api.supervised_experiment())["id"])
    url = f"/api/runs/{run['id']}/events"
    for _ in range(2):
        assert [event["type"] for event in (await client.get(url)).json()] == ["RunRequested"]
    # read from the stream: no wait for the projector
    await observer_bus.publish(RunLogged(run_id=run["id"], attempt=1, chunk=0, lines=["hello"]))
    assert [event["type"] for event in (await client.get(url)).json()] == ["RunRequested", "RunLogged"]


class Builds:
    """Build functions that count their calls."""

    def __init__(self) -> None:
        self.made: list[bytes] = []

    def of(self, body: bytes, release: asyncio.Event | None = None) -> Callable[[], Awaitable[bytes]]:
        async def build() -> bytes:
            if release is not None:
                await release.wait()
            self.made.append(body)
            return body
        return build


async def test_answers_are_served_at_their_version_and_the_least_recently_used_go_first():
    answers, builds = Answers(max_bytes=2 * ENTRY_BYTES + 10), Builds()

    async def answer(key: str, version: int, body: bytes) -> bytes:
        return await answers.get_or_build(key, version, builds.of(body))

    assert await answer("a", 1, b"aaaa") == b"aaaa"
    assert await answer("a", 1, b"new!") == b"aaaa"  # kept
    assert await answer("a", 2, b"a2a2") == b"a2a2"  # another version: built again
    await answer("b", 1, b"bbbb")
    await answer("a", 2, b"----")  # now "b" is the least recently used
    await answer("c", 1, b"cccc")  # 12 bytes and 3 entries: "b" goes
    assert builds.made == [b"aaaa", b"a2a2", b"bbbb", b"cccc"]
    assert [await answer(key, version, b"rebuilt") for key, version in (("a", 2), ("c", 1), ("b", 1))] == [
        b"a2a2", b"cccc", b"rebuilt"]
    await answer("huge", 1, b"x" * (ENTRY_BYTES + 11))  # larger than all that may be kept: not kept
    assert await answer("huge", 1, b"small") == b"small"


async def test_many_tiny_answers_are_bounded_too():
    answers, builds = Answers(max_bytes=3 * ENTRY_BYTES), Builds()
    for after_seq in range(10):
        await answers.get_or_build(("events", after_seq), 1, builds.of(b"[]"))
    for after_seq in range(10):
        await answers.get_or_build(("events", after_seq), 1, builds.of(b"[]"))
    assert len(builds.made) == 20  # never more than 3 kept, each pushed out before it was asked again


async def test_requests_for_an_answer_being_built_share_its_one_build():
    answers, builds, release = Answers(), Builds(), asyncio.Event()
    first = asyncio.create_task(answers.get_or_build("a", 1, builds.of(b"first", release)))
    second = asyncio.create_task(answers.get_or_build("a", 1, builds.of(b"second", release)))
    third = asyncio.create_task(answers.get_or_build("a", 1, builds.of(b"third", release)))
    await asyncio.sleep(0)
    first.cancel()  # a client that goes away does not cancel the build the others wait for
    release.set()
    assert await asyncio.gather(second, third) == [b"first", b"first"]
    assert builds.made == [b"first"]
