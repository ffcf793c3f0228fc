"""A run's metrics are downsampled keeping the curve's shape; its events and logs come in pages."""
from __future__ import annotations

import math
from datetime import datetime, timezone

import asyncpg

from events.catalogue import RunLogged
from services.registry.progress import wait_until_projected


async def test_metrics_are_downsampled_keeping_spikes_dips_ends_and_small_splits(api, client, db):
    run = await api.run((await api.supervised_experiment())["id"])
    now = datetime.now(timezone.utc)
    train = {step: 2.0 + math.sin(step / 300) for step in range(0, 20_000, 2)}  # 10,000 points
    train[7_000], train[15_000] = 50.0, -3.0  # a spike and a dip, one point each
    rows = [(run["id"], "train", step, 1, step / 1000, loss, now) for step, loss in train.items()]
    rows += [(run["id"], "validation", step, 1, step / 1000, 1.0, now) for step in range(0, 20_000, 2_000)]
    await db.copy_records_to_table("run_metrics", records=rows,
                                   columns=["run_id", "split", "step", "attempt", "epoch", "loss", "reported_at"])

    response = await client.get(f"/api/runs/{run['id']}/metrics", params={"max_points": 100})

    assert response.status_code == 200
    points = response.json()
    kept = {(point["split"], point["step"]): point["loss"] for point in points}
    train_steps = [step for split, step in kept if split == "train"]
    assert 60 <= len(train_steps) <= 100
    assert train_steps == sorted(train_steps)
    assert {0, 19_998, 7_000, 15_000} <= set(train_steps)
    assert all(kept["train", step] == train[step] for step in train_steps)
    # The overall minimum and maximum of every stretch survive: the curve's envelope.
    assert max(loss for (split, _), loss in kept.items() if split == "train") == 50.0
    assert min(loss for (split, _), loss in kept.items() if split == "train") == -3.0
    assert [step for split, step in kept if split == "validation"] == list(range(0, 20_000, 2_000))
    # By default up to 2,000 points per split.
    default = (await client.get(f"/api/runs/{run['id']}/metrics")).json()
    assert 1_000 < sum(point["split"] == "train" for point in default) <= 2_000
    for bad in ("3", "10001", "many"):
        assert (await client.get(f"/api/runs/{run['id']}/metrics", params={"max_points": bad})).status_code == 422


async def test_events_and_logs_come_in_pages(api, client, bus, settings):
    run = await api.run((await api.supervised_experiment())["id"])
    for chunk in range(3):
        seq = await bus.publish(RunLogged(run_id=run["id"], attempt=1, chunk=chunk, lines=[f"{chunk}a", f"{chunk}b"]))
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=1) as pool:
        await wait_until_projected(pool, seq)
    all_events = (await client.get(f"/api/runs/{run['id']}/events")).json()
    assert [event["type"] for event in all_events] == ["RunRequested"] + ["RunLogged"] * 3

    pages, after_seq = [], 0
    while True:
        page = (await client.get(f"/api/runs/{run['id']}/events", params={"after_seq": after_seq, "limit": 3})).json()
        pages.append(page)
        if len(page) < 3:
            break
        after_seq = page[-1]["seq"]
    assert [len(page) for page in pages] == [3, 1]
    assert [event for page in pages for event in page] == all_events  # each with the run's state as it was

    async def logs(**params) -> list[str]:
        return [line["line"] for line in (await client.get(f"/api/runs/{run['id']}/logs", params=params)).json()]

    assert await logs() == ["0a", "0b", "1a", "1b", "2a", "2b"]
    assert await logs(limit=4) == ["0a", "0b", "1a", "1b"]
    assert await logs(after="1.1.0", limit=4) == ["1b", "2a", "2b"]
    for bad in ({"after": "1.1"}, {"after": "x"}, {"limit": 0}):
        assert (await client.get(f"/api/runs/{run['id']}/logs", params=bad)).status_code == 422
    assert (await client.get(f"/api/runs/{run['id']}/events", params={"after_seq": -1})).status_code == 422
