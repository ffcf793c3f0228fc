"""The projector folds the studio loop (generations, samples, feedback, comparisons, datasets drawn
from feedback) into its read models, and a rebuild gives back the same."""
from __future__ import annotations

import json

from events import samples as sample_life
from events.generations import sample_id
from mixed_history import mixed_history
from services.registry.read_your_writes import wait_until_projected
from services.registry.rebuild import rebuild
from studio_history import studio_history


async def publish_all(bus, db) -> int:
    last = max(await bus.publish_many(mixed_history() + studio_history()))
    await wait_until_projected(db, last)
    return last


async def test_generations_end_in_the_status_their_history_says_and_samples_are_stored_once(bus, db, projector):
    await publish_all(bus, db)

    rows = {row["id"]: row for row in await db.fetch("SELECT * FROM generations")}
    assert {id: row["status"] for id, row in rows.items()} == {
        "tuned": "completed", "base": "completed", "broken": "failed", "dropped": "cancelled",
        "busy": "running", "waiting": "queued", "duel-a": "completed", "duel-b": "completed"}
    busy = rows["busy"]
    assert (busy["attempt"], busy["worker_id"], busy["steps_done"], busy["cancel_requested"]) == (2, "w2", 1, True)
    assert (rows["tuned"]["attempt"], rows["tuned"]["seconds_taken"]) == (1, 1.5)
    assert rows["broken"]["error"] == "out of memory"
    assert rows["base"]["adapter_id"] is None and rows["duel-a"]["comparison_id"] == "duel"

    stored = await db.fetch("SELECT id, generation_id, index, prompt, adapter_id FROM samples ORDER BY generation_id, index")
    assert [(r["generation_id"], r["index"]) for r in stored] == [
        ("base", 0), ("base", 1), ("duel-a", 0), ("duel-a", 1), ("duel-b", 0), ("duel-b", 1), ("tuned", 0), ("tuned", 1)]
    tuned0 = next(r for r in stored if r["id"] == sample_id("tuned", 0))
    assert (tuned0["prompt"], tuned0["adapter_id"]) == ("prompt of tuned", "adapter-done")


async def test_feedback_read_models_equal_the_fold_of_each_samples_history(bus, db, projector):
    await publish_all(bus, db)

    for generation, index in (("tuned", 0), ("tuned", 1), ("base", 0)):
        sample = sample_id(generation, index)
        expected = sample_life.fold(stored.event for stored in await bus.history("sample", sample))
        ratings = dict(await db.fetch("SELECT criterion, rating FROM sample_ratings WHERE sample_id = $1", sample))
        tags = {row["tag"] for row in await db.fetch("SELECT tag FROM sample_tags WHERE sample_id = $1", sample)}
        favorite = await db.fetchval("SELECT favorite FROM samples WHERE id = $1", sample)
        assert sample_life.Feedback(ratings=ratings, tags=frozenset(tags), favorite=favorite) == expected
    assert dict(await db.fetch("SELECT criterion, rating FROM sample_ratings WHERE sample_id = $1",
                               sample_id("tuned", 0))) == {"overall": 5, "melody": 3}


async def test_a_comparison_keeps_its_blind_orders_and_the_first_vote_of_each_pair(bus, db, projector):
    await publish_all(bus, db)

    pairs = await db.fetch("SELECT id, first, choice, outcome FROM comparison_pairs ORDER BY id")
    assert [tuple(row) for row in pairs] == [("duel-0", "b", "second", "a"), ("duel-1", "a", "equal", "tie")]
    sides = await db.fetch("SELECT side, generation_id FROM comparison_generations ORDER BY side")
    assert [tuple(row) for row in sides] == [("a", "duel-a"), ("b", "duel-b")]


async def test_a_dataset_drawn_from_feedback_records_its_filter_and_sources(bus, db, projector):
    await publish_all(bus, db)

    assert json.loads(await db.fetchval("SELECT filter FROM dataset_filters WHERE dataset_id = 'liked'"))["min_rating"] == 4
    sources = await db.fetch("SELECT item_id, role, sample_id, comparison_pair_id FROM dataset_sources ORDER BY item_id, role")
    assert [tuple(row) for row in sources] == [
        ("liked-0", "clip", sample_id("tuned", 0), None),
        ("votes-0", "chosen", sample_id("duel-a", 0), "duel-0"),
        ("votes-0", "rejected", sample_id("duel-b", 0), "duel-0"),
    ]


async def test_rebuilt_studio_read_models_equal_the_incrementally_built_ones(settings, bus, db, projector, digest,
                                                                            store_again):
    history = mixed_history() + studio_history()
    for start in range(0, len(history), 29):  # many small commands, as the API would publish them
        last = max(await bus.publish_many(history[start:start + 29]))
    last = await store_again(studio_history()[-3])  # a duplicate stored after the dedup window
    await wait_until_projected(db, last)
    incremental = await digest()
    assert incremental["samples"][0] == 8 and incremental["comparison_pairs"][0] == 2

    assert await rebuild(settings) == last
    assert await digest() == incremental
