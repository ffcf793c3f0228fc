"""The projector folds what happens to datasets, experiments and runs into the read models."""
from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from events.bus import Bus
from events.catalogue import LossReported, RunCancelled, RunCancelRequested, RunCompleted, RunStarted
from mixed_history import datasets_and_experiments, late_events, mixed_history, run_lifecycles, run_requests
from services.registry.checkpoint import read_checkpoint
from services.registry.fold import apply_batch
from services.registry.migrate import MIGRATIONS_DIR, migrate
from services.registry.read_your_writes import ProjectionTimeout, wait_until_projected
from services.registry.projector import StreamBehindReadModels, run_projector


async def publish(bus: Bus, db: asyncpg.Pool, events: list) -> int:
    """Publish like the API does: then wait until the read models include the events."""
    last = max(await bus.publish_many(events))
    await wait_until_projected(db, last)
    return last


async def test_datasets_and_experiments_are_readable(bus, db, projector):
    await publish(bus, db, datasets_and_experiments())

    assert await db.fetchval("SELECT count(*) FROM clips WHERE dataset_id = 'drums'") == 12
    pairs = await db.fetch("SELECT * FROM preference_pairs ORDER BY id")
    assert len(pairs) == 8
    chosen = await db.fetchrow("SELECT * FROM clips WHERE id = $1", pairs[0]["chosen_clip_id"])
    assert (chosen["dataset_id"], chosen["prompt"], chosen["sample_rate"]) == ("taste", pairs[0]["prompt"], 32_000)
    # updates changed only what they named
    beat = await db.fetchrow("SELECT * FROM experiments WHERE id = 'beat'")
    assert (beat["name"], beat["description"], beat["dataset_id"]) == ("Beat", "faster", "pads")
    assert json.loads(beat["config"]) == {"lora_r": 16}
    assert beat["updated_at"] > beat["created_at"]
    dpo = await db.fetchrow("SELECT * FROM experiments WHERE id = 'dpo'")
    assert (dpo["name"], dpo["description"], dpo["dataset_id"]) == ("DPO v2", "", "taste")


async def test_runs_go_through_every_status(bus, db, projector, run_row):
    await publish(bus, db, datasets_and_experiments() + run_requests())
    waiting = await run_row("waiting")
    assert (waiting["status"], waiting["attempt"], waiting["dataset_type"]) == ("queued", 0, "preference")
    assert json.loads(waiting["config"])["num_epochs"] == 2

    await publish(bus, db, run_lifecycles())

    statuses = dict(await db.fetch("SELECT id, status FROM runs"))
    assert statuses == {"done": "completed", "broken": "failed", "resumed": "running",
                        "stopped-early": "cancelled", "stopped-running": "cancelled", "waiting": "queued"}
    done = await run_row("done")
    assert (done["final_loss"], done["best_validation_loss"], done["steps"], done["adapter_id"]) == (0.12, 0.2, 80, "adapter-done")
    assert done["requested_at"] < done["started_at"] < done["finished_at"]
    assert (done["dataset_rows"], json.loads(done["last_checkpoint"])["step"]) == (12, 40)
    assert (await run_row("broken"))["error"] == "CUDA out of memory"
    resumed = await run_row("resumed")
    assert (resumed["attempt"], resumed["trainer_id"]) == (2, "t2")
    adapter = await db.fetchrow("SELECT * FROM adapters WHERE id = 'adapter-done'")
    assert (adapter["run_id"], adapter["final_loss"], json.loads(adapter["lora_config"])) == ("done", 0.12, {"r": 8, "alpha": 16})
    logs = await db.fetch("SELECT line FROM run_logs WHERE run_id = 'done' ORDER BY attempt, chunk, line_no")
    assert [row["line"] for row in logs] == ["loading", "training", "saved"]


async def test_a_queued_run_is_cancelled_only_when_the_cancellation_arrives(bus, db, projector, run_row):
    await publish(bus, db, datasets_and_experiments() + run_requests())
    await publish(bus, db, [RunCancelRequested(run_id="stopped-early")])
    requested = await run_row("stopped-early")
    assert (requested["status"], requested["cancel_requested"]) == ("queued", True)

    await publish(bus, db, [RunCancelled(run_id="stopped-early", attempt=0)])

    assert (await run_row("stopped-early"))["status"] == "cancelled"


async def test_removed_clips_and_pairs_are_marked_and_stay_removed(bus, db, projector):
    await publish(bus, db, mixed_history())  # removes drums-3 (then adds it again late) and pair-2

    removed = await db.fetch("SELECT id FROM clips WHERE removed_at IS NOT NULL ORDER BY id")
    assert [row["id"] for row in removed] == ["chosen-2", "drums-3", "rejected-2"]
    assert [row["id"] for row in await db.fetch("SELECT id FROM preference_pairs WHERE removed_at IS NOT NULL")] == ["pair-2"]


async def test_a_resumed_attempt_replaces_the_steps_it_reports_again(bus, db, projector):
    await publish(bus, db, mixed_history())

    rows = await db.fetch("SELECT step, attempt FROM run_metrics WHERE run_id = 'resumed' AND split = 'train' ORDER BY step")
    assert [row["step"] for row in rows] == list(range(60))
    assert {row["step"]: row["attempt"] for row in rows} == {step: 1 if step < 20 else 2 for step in range(60)}


async def test_late_and_repeated_events_never_move_a_run_backwards(bus, db, projector, run_row, store_again):
    await publish(bus, db, mixed_history())  # ends with late events: a start after completion, ...
    before = {run_id: dict(await run_row(run_id)) for run_id in ("done", "broken", "stopped-early", "resumed")}
    assert {run_id: (run["status"], run["attempt"]) for run_id, run in before.items()} == {
        "done": ("completed", 1), "broken": ("failed", 1), "stopped-early": ("cancelled", 0), "resumed": ("running", 2)}
    assert (before["done"]["error"], before["done"]["cancel_requested"]) == (None, False)

    # the same events stored again, as retries after the duplicate window would be
    for event in [*late_events(), RunStarted(run_id="resumed", attempt=1, trainer_id="t1"),
                  RunCompleted(run_id="done", attempt=1, final_loss=9.9, steps=1, seconds=1.0, adapter_id="other"),
                  LossReported(run_id="resumed", attempt=1, step=29, epoch=2.9, loss=99.0)]:
        last = await store_again(event)
    await wait_until_projected(db, last)

    assert {run_id: dict(await run_row(run_id)) for run_id in before} == before
    assert await db.fetchval("SELECT loss FROM run_metrics WHERE run_id = 'resumed' AND step = 29") != 99.0


async def test_a_redelivered_event_changes_nothing(bus, db, projector, digest):
    last = await publish(bus, db, mixed_history())
    projected = await digest()

    # the whole stream delivered again, as after a rewound consumer, through the projector's fold
    replayed = [stored async for stored in bus.events(start_seq=1)]
    async with db.acquire() as conn, conn.transaction():
        assert await apply_batch(conn, replayed) == last
    async with db.acquire() as conn, conn.transaction():
        await apply_batch(conn, replayed[-1:])

    assert await digest() == projected


async def test_waiting_for_a_sequence_the_projector_has_not_reached_times_out(bus, db):
    seq = await bus.publish(late_events()[0])

    with pytest.raises(ProjectionTimeout, match=f"folded up to sequence 0, not yet {seq}"):
        await wait_until_projected(db, seq, timeout=0.3)


async def test_migrations_apply_once_however_many_services_start(db):
    async with db.acquire() as conn:
        assert await migrate(conn) == []
    assert await asyncio.gather(*(migrate(db) for _ in range(3))) == [[], [], []]
    assert await db.fetchval("SELECT count(*) FROM schema_migrations") == len(list(MIGRATIONS_DIR.glob("*.sql")))
    assert await read_checkpoint(db) == 0


async def test_read_models_ahead_of_the_stream_stop_the_projector_with_advice(settings, bus, db):
    await db.execute("INSERT INTO projector_checkpoint (name, last_seq) VALUES ('registry', 500)")

    with pytest.raises(StreamBehindReadModels, match=r"folded up to sequence 500 .* ends at 0: .*`cadenza rebuild`"):
        await asyncio.wait_for(run_projector(settings, asyncio.Event()), timeout=15)


async def test_a_stop_ends_the_wait_for_new_events_at_once(settings, bus, db, monkeypatch):
    monkeypatch.setattr("services.registry.projector.IDLE_WAIT", 30.0)
    stop = asyncio.Event()
    task = asyncio.create_task(run_projector(settings, stop))
    await publish(bus, db, datasets_and_experiments())
    await asyncio.sleep(0.3)  # the projector waits for new events now

    stop.set()
    await asyncio.wait_for(task, timeout=5)  # not the 30 s its fetch could still wait
