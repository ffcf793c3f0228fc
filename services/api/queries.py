"""Reads: plain SQL on the registry's read models, answered as the response models."""
from __future__ import annotations

from typing import Any, Iterator

import asyncpg
from pydantic import TypeAdapter

from services.api.answers import Answers
from services.api.errors import NotFound
from services.api.pages import page_end
from services.api.schemas import (
    Adapter, BestRuns, Clip, Dataset, DatasetDetail, Experiment, LogLine, Metric, Pair, Run, RunSummary,
)
from services.registry import read_models_version

DATASET_SQL = """
    SELECT d.*,
           (SELECT count(*) FROM clips c WHERE c.dataset_id = d.id AND c.removed_at IS NULL) AS clip_count,
           (SELECT count(*) FROM preference_pairs p WHERE p.dataset_id = d.id AND p.removed_at IS NULL) AS pair_count
    FROM datasets d
"""
RUN_SUMMARY_COLUMNS = (
    "id, experiment_id, name, dataset_type, status, attempt, final_loss, adapter_id, requested_at, finished_at"
)


def clip_from(row: asyncpg.Record | dict[str, Any]) -> Clip:
    return Clip(**{**row, "audio_url": f"/api/clips/{row['id']}/audio"})


def adapter_from(row: asyncpg.Record) -> Adapter:
    return Adapter(**{**row, "download_url": f"/api/adapters/{row['id']}/download"})


async def list_datasets(pool: asyncpg.Pool) -> list[Dataset]:
    rows = await pool.fetch(DATASET_SQL + " ORDER BY d.created_at, d.id")
    return [Dataset(**row) for row in rows]


async def dataset(pool: asyncpg.Pool, dataset_id: str) -> Dataset:
    row = await pool.fetchrow(DATASET_SQL + " WHERE d.id = $1", dataset_id)
    if row is None:
        raise NotFound("dataset", dataset_id)
    return Dataset(**row)


async def dataset_detail(pool: asyncpg.Pool, dataset_id: str, after: str | None = None,
                         limit: int | None = None) -> DatasetDetail:
    """The dataset with its clips or pairs, as its kind holds, `limit` of them after the one `after` names."""
    found = await dataset(pool, dataset_id)
    if found.kind == "supervised":
        return DatasetDetail(**found.model_dump(), clips=await clips_of(pool, dataset_id, after, limit), pairs=[])
    pairs = await pairs_of(pool, dataset_id, after=after, limit=limit)
    return DatasetDetail(**found.model_dump(), clips=[], pairs=pairs)


async def clip(pool: asyncpg.Pool, clip_id: str) -> Clip:
    row = await pool.fetchrow("SELECT * FROM clips WHERE id = $1 AND removed_at IS NULL", clip_id)
    if row is None:
        raise NotFound("clip", clip_id)
    return clip_from(row)


async def clips_of(pool: asyncpg.Pool, dataset_id: str, after: str | None = None,
                   limit: int | None = None) -> list[Clip]:
    """In the order they were added; `limit` of them after the clip `after` (removed since or not)."""
    end = await page_end(pool, "SELECT created_at, id FROM clips WHERE id = $1 AND dataset_id = $2", "clip", after,
                         dataset_id)
    rows = await pool.fetch(
        "SELECT * FROM clips WHERE dataset_id = $1 AND removed_at IS NULL"
        " AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) ORDER BY created_at, id LIMIT $4",
        dataset_id, *end, limit,
    )
    return [clip_from(row) for row in rows]


async def pairs_of(pool: asyncpg.Pool, dataset_id: str, pair_id: str | None = None, after: str | None = None,
                   limit: int | None = None) -> list[Pair]:
    """The dataset's pairs with their two clips (only `pair_id` when given), in the order they were
    added; `limit` of them after the pair `after` (removed since or not)."""
    end = await page_end(pool, "SELECT created_at, id FROM preference_pairs WHERE id = $1 AND dataset_id = $2", "pair",
                         after, dataset_id)
    rows = await pool.fetch(
        """
        SELECT p.id, p.dataset_id, p.prompt, p.created_at,
               to_jsonb(chosen) AS chosen, to_jsonb(rejected) AS rejected
        FROM preference_pairs p
        JOIN clips chosen ON chosen.id = p.chosen_clip_id
        JOIN clips rejected ON rejected.id = p.rejected_clip_id
        WHERE p.dataset_id = $1 AND p.removed_at IS NULL AND ($2::text IS NULL OR p.id = $2)
          AND ($3::timestamptz IS NULL OR (p.created_at, p.id) > ($3, $4))
        ORDER BY p.created_at, p.id
        LIMIT $5
        """,
        dataset_id,
        pair_id,
        *end,
        limit,
    )
    return [
        Pair(**{**row, "chosen": clip_from(row["chosen"]), "rejected": clip_from(row["rejected"])})
        for row in rows
    ]


def export_rows(pairs_or_clips: list[Clip] | list[Pair]) -> Iterator[dict[str, str]]:
    """The JSONL rows the trainer reads. Audio paths are the object names in the clips bucket
    (`<sha256>.<ext>`): relative paths that resolve to a local file once the objects are fetched into
    a folder (the trainer's content-addressed cache) under the same names."""
    for item in pairs_or_clips:
        if isinstance(item, Pair):
            yield {
                "prompt": item.prompt,
                "chosen_path": item.chosen.object_name,
                "rejected_path": item.rejected.object_name,
            }
        else:
            yield {"prompt": item.prompt, "audio_path": item.object_name}


async def experiments(pool: asyncpg.Pool, experiment_id: str | None = None, after: str | None = None,
                      limit: int | None = None) -> list[Experiment]:
    """Every experiment (or the one named) in the order they were created, each with a summary of
    its runs, newest run first; `limit` of them after the experiment `after`."""
    end = await page_end(pool, "SELECT created_at, id FROM experiments WHERE id = $1", "experiment", after)
    rows = await pool.fetch(
        "SELECT * FROM experiments WHERE ($1::text IS NULL OR id = $1)"
        " AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) ORDER BY created_at, id LIMIT $4",
        experiment_id, *end, limit,
    )
    run_rows = await pool.fetch(
        f"SELECT {RUN_SUMMARY_COLUMNS} FROM runs WHERE experiment_id = ANY($1::text[])"
        " ORDER BY requested_at DESC, id",
        [row["id"] for row in rows],
    )
    runs: dict[str, list[RunSummary]] = {}
    for run in run_rows:
        runs.setdefault(run["experiment_id"], []).append(RunSummary(**run))
    return [Experiment(**row, runs=runs.get(row["id"], []), best_runs=best_runs(runs.get(row["id"], [])))
            for row in rows]


def best_runs(runs: list[RunSummary]) -> BestRuns:
    completed = [run for run in runs if run.status == "completed" and run.final_loss is not None]
    best = {}
    for kind in ("supervised", "preference"):
        of_kind = [run for run in completed if run.dataset_type == kind]
        best[kind] = min(of_kind, key=lambda run: run.final_loss) if of_kind else None
    return BestRuns(**best)


async def experiment(pool: asyncpg.Pool, experiment_id: str) -> Experiment:
    found = await experiments(pool, experiment_id)
    if not found:
        raise NotFound("experiment", experiment_id)
    return found[0]


async def run(pool: asyncpg.Pool, run_id: str) -> Run:
    row = await pool.fetchrow("SELECT * FROM runs WHERE id = $1", run_id)
    if row is None:
        raise NotFound("run", run_id)
    return Run(**row)


async def require_run(conn: asyncpg.Connection | asyncpg.Pool, run_id: str) -> None:
    """Raise `NotFound` unless the run exists."""
    if await conn.fetchval("SELECT 1 FROM runs WHERE id = $1", run_id) is None:
        raise NotFound("run", run_id)


async def runs(pool: asyncpg.Pool, experiment_id: str | None = None, after: str | None = None,
               limit: int | None = None) -> list[Run]:
    """Newest request first; `limit` of them after the run `after`."""
    end = await page_end(pool, "SELECT requested_at, id FROM runs WHERE id = $1", "run", after)
    # Descending time but ascending id: no row comparison says "after" here. The first condition
    # bounds the index range, the second drops the page end's earlier ties.
    rows = await pool.fetch(
        "SELECT * FROM runs WHERE ($1::text IS NULL OR experiment_id = $1)"
        " AND ($2::timestamptz IS NULL OR (requested_at <= $2 AND (requested_at < $2 OR id > $3)))"
        " ORDER BY requested_at DESC, id LIMIT $4",
        experiment_id, *end, limit,
    )
    return [Run(**row) for row in rows]


# A split with at most $2 points is answered whole. A longer one is read from its summary
# (run_metric_buckets, migration 004) at the finest level whose buckets over the split's step range
# number at most ($2 - 1) / 3: of each bucket its lowest and highest loss and its last point, plus
# the split's first point. Min and max keep every spike and dip a chart would show at that width,
# the last point keeps the trend (what a smoothed curve ends at). Only the chosen buckets and the
# points they name are read, through primary keys, whatever the run's length.
DOWNSAMPLED_METRICS_SQL = """
    WITH splits AS (
        SELECT t.split, t.points, t.last_step,
               (SELECT min(m.step) FROM run_metrics m WHERE m.run_id = $1 AND m.split = t.split) AS first_step
        FROM run_metric_buckets t WHERE t.run_id = $1 AND t.level = 31 AND t.bucket = 0
    ), summarised AS (
        SELECT split, first_step,
               (SELECT min(level) FROM generate_series(1, 31) AS level
                WHERE (last_step >> level) - (first_step >> level) < ($2 - 1) / 3) AS level
        FROM splits WHERE points > $2
    ), kept AS (
        SELECT s.split, kept.step FROM summarised s
        JOIN run_metric_buckets b ON b.run_id = $1 AND b.split = s.split AND b.level = s.level
        CROSS JOIN LATERAL (VALUES (b.low_step), (b.high_step), (b.last_step)) AS kept (step)
        UNION
        SELECT split, first_step FROM summarised
    )
    SELECT m.* FROM splits s JOIN run_metrics m ON m.run_id = $1 AND m.split = s.split WHERE s.points <= $2
    UNION ALL
    SELECT m.* FROM kept k JOIN run_metrics m ON m.run_id = $1 AND m.split = k.split AND m.step = k.step
    ORDER BY split, step
"""


METRICS = TypeAdapter(list[Metric])


async def metrics_json(pool: asyncpg.Pool, answers: Answers, run_id: str, max_points: int) -> bytes:
    """At most `max_points` points per split (see DOWNSAMPLED_METRICS_SQL), as JSON; kept in
    `answers` until the read models change. A kept answer's run existed at its version, so it
    still does."""

    async def build() -> bytes:
        rows = await pool.fetch(DOWNSAMPLED_METRICS_SQL, run_id, max_points)
        if not rows:
            await require_run(pool, run_id)
        return METRICS.dump_json(METRICS.validate_python([dict(row) for row in rows]))

    # Read before the points: an answer built from read models newer than its version is only
    # fresher than it need be.
    version = await read_models_version(pool)
    return await answers.get_or_build(("metrics", run_id, max_points), version, build)


async def logs(pool: asyncpg.Pool, run_id: str, after: tuple[int, int, int] | None, limit: int) -> list[LogLine]:
    """The first `limit` lines after the line at (attempt, chunk, line_no) `after`."""
    rows = await pool.fetch(
        "SELECT * FROM run_logs WHERE run_id = $1 AND ($2::int IS NULL OR (attempt, chunk, line_no) > ($2, $3, $4))"
        " ORDER BY attempt, chunk, line_no LIMIT $5",
        run_id, *(after or (None, None, None)), limit,
    )
    if not rows:
        await require_run(pool, run_id)
    return [LogLine(**row) for row in rows]


async def adapters(pool: asyncpg.Pool, after: str | None = None, limit: int | None = None) -> list[Adapter]:
    """In the order they were registered; `limit` of them after the adapter `after`."""
    end = await page_end(pool, "SELECT created_at, id FROM adapters WHERE id = $1", "adapter", after)
    rows = await pool.fetch(
        "SELECT * FROM adapters WHERE $1::timestamptz IS NULL OR (created_at, id) > ($1, $2)"
        " ORDER BY created_at, id LIMIT $3",
        *end, limit,
    )
    return [adapter_from(row) for row in rows]


async def adapter(pool: asyncpg.Pool, adapter_id: str) -> Adapter:
    row = await pool.fetchrow("SELECT * FROM adapters WHERE id = $1", adapter_id)
    if row is None:
        raise NotFound("adapter", adapter_id)
    return adapter_from(row)
