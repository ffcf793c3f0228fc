"""A run's metrics are downsampled keeping the curve's shape; its events and logs come in keyset
pages, each page's `Link` header naming the next and the last page having none."""
from __future__ import annotations

import math
import random

import asyncpg

from events.catalogue import LossReported, RunLogged
from services.registry.read_your_writes import wait_until_projected
from tests.api.test_list_pages import NEXT, walk


def curve(run_id: str) -> tuple[list[LossReported], set[int]]:
    """6,000 noisy train points with spikes and dips, a resumed attempt re-reporting 1,000 of them
    (which also replaces a spike of the first attempt), and 12 validation points; the spikes and dips
    of the curve as finally stored."""
    noise = random.Random(13)
    loss = {step: 2.0 + math.sin(step / 300) + noise.uniform(-0.05, 0.05) for step in range(6_000)}
    # one every 250 steps at an uneven offset, spikes and dips in turn: a bucket holds at most one of each
    outliers = {step: loss[step] + (30.0 + n if n % 2 else -10.0 - n)
                for n, step in enumerate(range(noise.randrange(1, 250), 5_999, 250))}
    loss.update(outliers)
    reports = [LossReported(run_id=run_id, attempt=1, step=step, epoch=step / 1000, loss=value)
               for step, value in loss.items()]
    replaced = range(3_000, 4_000)
    reports += [LossReported(run_id=run_id, attempt=2, step=step, epoch=step / 1000, loss=1.5) for step in replaced]
    reports += [LossReported(run_id=run_id, attempt=2, split="validation", step=step, epoch=step / 1000, loss=1.0)
                for step in range(0, 6_000, 500)]
    return reports, {step for step in outliers if step not in replaced}


async def test_metrics_are_downsampled_keeping_spikes_dips_ends_and_small_splits(api, client, observer_bus, settings):
    run = await api.run((await api.supervised_experiment())["id"])
    reports, outliers = curve(run["id"])
    # published in commands of varied sizes, so the projector folds them in batches of varied bounds
    start, sizes = 0, [1, 37, 500, 3, 1_000, 250]
    while start < len(reports):
        size = sizes[start % len(sizes)]
        last = max(await observer_bus.publish_many(reports[start:start + size]))
        start += size
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=1) as pool:
        await wait_until_projected(pool, last)

    async def points(max_points: int) -> dict[str, list[dict]]:
        response = await client.get(f"/api/runs/{run['id']}/metrics", params={"max_points": max_points})
        assert response.status_code == 200
        by_split: dict[str, list[dict]] = {"train": [], "validation": []}
        for point in response.json():
            by_split[point["split"]].append(point)
        return by_split

    full = await points(10_000)  # at most 10,000 points per split: the whole curve
    assert [point["step"] for point in full["train"]] == list(range(6_000))
    assert {point["loss"] for point in full["train"] if 3_000 <= point["step"] < 4_000} == {1.5}
    for max_points in (4, 100, 2_000):
        shown = await points(max_points)
        train = shown["train"]
        assert len(train) <= max_points
        assert [point["step"] for point in train] == sorted({point["step"] for point in train})
        assert all(point == full["train"][point["step"]] for point in train)  # real points, as stored
        assert train[0] == full["train"][0] and train[-1] == full["train"][-1]
        if max_points < 100:
            assert len(shown["validation"]) <= max_points
            continue
        assert shown["validation"] == full["validation"]  # 12 points: whole
        assert outliers <= {point["step"] for point in train}
        # The envelope: every stored point has a shown one at least as high and one at least as low
        # within the width a bucket may have (at least a third of max_points buckets span the steps).
        width = 2 * 3 * 6_000 // max_points
        for point in full["train"]:
            near = [shown_point["loss"] for shown_point in train if abs(shown_point["step"] - point["step"]) < width]
            assert min(near) <= point["loss"] <= max(near), point
    default = (await points(2_000))["train"]
    assert (await client.get(f"/api/runs/{run['id']}/metrics")).json()[:len(default)] == default
    for bad in ("3", "10001", "many"):
        assert (await client.get(f"/api/runs/{run['id']}/metrics", params={"max_points": bad})).status_code == 422


async def test_events_and_logs_come_in_pages(api, client, observer_bus, settings):
    run = await api.run((await api.supervised_experiment())["id"])
    for chunk in range(3):
        seq = await observer_bus.publish(RunLogged(run_id=run["id"], attempt=1, chunk=chunk, lines=[f"{chunk}a", f"{chunk}b"]))
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=1) as pool:
        await wait_until_projected(pool, seq)
    all_events = (await client.get(f"/api/runs/{run['id']}/events")).json()
    assert [event["type"] for event in all_events] == ["RunRequested"] + ["RunLogged"] * 3

    async def walked(url: str, limit: int) -> list[list[dict]]:
        pages = await walk(client, url, limit=limit)
        assert "Link" not in pages[-1].headers
        return [page.json() for page in pages]

    events_url = f"/api/runs/{run['id']}/events"
    for _ in range(2):  # the second walk is served the kept answers: their `Link` headers too
        pages = await walked(events_url, 3)
        assert [len(page) for page in pages] == [3, 1]
        assert [event for page in pages for event in page] == all_events  # each with the run's state as it was
        first = await client.get(events_url, params={"limit": 3})
        assert NEXT.fullmatch(first.headers["Link"]).group(1) == f"{events_url}?after_seq={all_events[2]['seq']}&limit=3"
    # a page exactly full is the last one when nothing follows it, until the run has another event
    assert [len(page) for page in await walked(events_url, 2)] == [2, 2]
    assert [len(page) for page in await walked(events_url, 4)] == [4]
    seq = await observer_bus.publish(RunLogged(run_id=run["id"], attempt=2, chunk=0, lines=["3a"]))
    pages = await walked(events_url, 2)
    assert [event["seq"] for page in pages for event in page] == [event["seq"] for event in all_events] + [seq]
    assert [len(page) for page in pages] == [2, 2, 1]
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=1) as pool:
        await wait_until_projected(pool, seq)

    logs_url = f"/api/runs/{run['id']}/logs"
    pages = await walked(logs_url, 4)
    assert [[line["line"] for line in page] for page in pages] == [["0a", "0b", "1a", "1b"], ["2a", "2b", "3a"]]
    first = await client.get(logs_url, params={"limit": 4})
    assert NEXT.fullmatch(first.headers["Link"]).group(1) == f"{logs_url}?after=1.1.1&limit=4"
    assert [[line["line"] for line in page] for page in await walked(logs_url, 7)] == [
        ["0a", "0b", "1a", "1b", "2a", "2b", "3a"]]
    assert [len(page) for page in await walked(logs_url, 1)] == [1] * 7

    async def logs(**params) -> list[str]:
        return [line["line"] for line in (await client.get(f"/api/runs/{run['id']}/logs", params=params)).json()]

    assert await logs() == ["0a", "0b", "1a", "1b", "2a", "2b", "3a"]
    assert await logs(limit=4) == ["0a", "0b", "1a", "1b"]
    assert await logs(after="1.1.0", limit=4) == ["1b", "2a", "2b", "3a"]
    for bad in ({"after": "1.1"}, {"after": "x"}, {"limit": 0}):
        assert (await client.get(f"/api/runs/{run['id']}/logs", params=bad)).status_code == 422
    assert (await client.get(f"/api/runs/{run['id']}/events", params={"after_seq": -1})).status_code == 422
