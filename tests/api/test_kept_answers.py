"""Answers kept between requests (a run's metrics, its events) are served again only while what
they were built from is unchanged: a change to the read models or to the stream shows at once."""
from __future__ import annotations

import asyncpg

from events.catalogue import LossReported, RunLogged, RunRequested
from model.training.config import TrainingConfig
from services.api.answers import Answers
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


def test_answers_are_served_at_their_version_and_the_least_recently_used_go_first():
    answers = Answers(max_bytes=10)
    answers.put("a", 1, b"aaaa")
    assert answers.get("a", 1) == b"aaaa"
    assert answers.get("a", 2) is None
    answers.put("b", 1, b"bbbb")
    assert answers.get("a", 1) == b"aaaa"  # now "b" is the least recently used
    answers.put("c", 1, b"cccc")
    assert (answers.get("a", 1), answers.get("b", 1), answers.get("c", 1)) == (b"aaaa", None, b"cccc")
    answers.put("a", 2, b"a2")  # replaces the answer at the older version
    assert (answers.get("a", 1), answers.get("a", 2)) == (None, b"a2")
    answers.put("huge", 1, b"x" * 11)  # larger than everything kept may be: not kept, nothing evicted
    assert (answers.get("huge", 1), answers.get("a", 2), answers.get("c", 1)) == (None, b"a2", b"cccc")
