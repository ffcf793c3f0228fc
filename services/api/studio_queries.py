"""Reads of the studio loop: plain SQL on the registry's read models, answered as response models."""
from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from events import comparisons as comparison_life
from events.base import ObjectRef
from events.comparisons import PairState
from events.generations import ACTIVE
from services.api import statistics
from services.api.errors import NotFound
from services.api.pages import page_end
from services.api.studio_schemas import (
    Comparison, ComparisonGenerationStatus, ComparisonResults, Generation, NextPair, Preference, Sample,
)

SAMPLE_SQL = """
    SELECT s.*,
           COALESCE((SELECT jsonb_object_agg(r.criterion, r.rating) FROM sample_ratings r WHERE r.sample_id = s.id),
                    '{}') AS ratings,
           ARRAY(SELECT t.tag FROM sample_tags t WHERE t.sample_id = s.id ORDER BY t.tag) AS tags
    FROM samples s
"""
ACTIVE_STATUSES = sorted(ACTIVE)


def sample_from(row: asyncpg.Record) -> Sample:
    return Sample(**{**row, "audio_url": f"/api/samples/{row['id']}/audio"})


# --- samples ------------------------------------------------------------------------------------
async def sample(pool: asyncpg.Pool, sample_id: str) -> Sample:
    row = await pool.fetchrow(SAMPLE_SQL + " WHERE s.id = $1", sample_id)
    if row is None:
        raise NotFound("sample", sample_id)
    return sample_from(row)


async def sample_object(pool: asyncpg.Pool, sample_id: str) -> tuple[ObjectRef, str]:
    """Where the sample's audio is stored, and its format."""
    row = await pool.fetchrow("SELECT bucket, object_name, sha256, size, format FROM samples WHERE id = $1", sample_id)
    if row is None:
        raise NotFound("sample", sample_id)
    return ObjectRef(bucket=row["bucket"], name=row["object_name"], sha256=row["sha256"], size=row["size"]), row["format"]


@dataclass(frozen=True)
class SampleFilter:
    adapter_id: str | None = None
    base_model: str | None = None
    min_rating: int | None = None
    tag: str | None = None
    favorite: bool | None = None
    q: str | None = None


async def samples(pool: asyncpg.Pool, where: SampleFilter, after: str | None = None, limit: int | None = None) -> list[Sample]:
    """Newest generation first, each one's samples in order; `limit` of them after the sample
    `after` (the last one of the previous page). `min_rating` is on the latest `overall` rating.
    `after` may name any sample, one the filter leaves out too: feedback given since the page before
    was read can take that page's last sample out of the filter, and the next page still starts behind it."""
    end = await page_end(pool, "SELECT g.requested_at, s.id FROM samples s JOIN generations g ON g.id = s.generation_id"
                               " WHERE s.id = $1", "sample", after)
    # Descending time but ascending (generation, index), as queries.runs: the first condition
    # bounds the range, the second drops the page end's earlier ties.
    rows = await pool.fetch(
        SAMPLE_SQL + """
        JOIN generations g ON g.id = s.generation_id
        WHERE ($1::text IS NULL OR s.adapter_id = $1)
          AND ($2::text IS NULL OR s.base_model = $2)
          AND ($3::int IS NULL OR EXISTS (SELECT 1 FROM sample_ratings r WHERE r.sample_id = s.id
                                          AND r.criterion = 'overall' AND r.rating >= $3))
          AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM sample_tags t WHERE t.sample_id = s.id AND t.tag = $4))
          AND ($5::boolean IS NULL OR s.favorite = $5)
          AND ($6::text IS NULL OR strpos(lower(s.prompt), lower($6)) > 0)
          AND ($7::timestamptz IS NULL OR (g.requested_at <= $7 AND (g.requested_at < $7 OR (s.generation_id, s.index)
               > (SELECT c.generation_id, c.index FROM samples c WHERE c.id = $8))))
        ORDER BY g.requested_at DESC, s.generation_id, s.index
        LIMIT $9
        """,
        where.adapter_id, where.base_model, where.min_rating, where.tag, where.favorite, where.q, *end, limit,
    )
    return [sample_from(row) for row in rows]


async def preference(pool: asyncpg.Pool, preference_id: str) -> Preference:
    return Preference(**await pool.fetchrow("SELECT * FROM preferences WHERE id = $1", preference_id))


# --- generations --------------------------------------------------------------------------------
async def generations(pool: asyncpg.Pool, generation_id: str | None = None, after: str | None = None,
                      limit: int | None = None) -> list[Generation]:
    """Every generation (or the one named), newest first, with its samples in order; `limit` of
    them after the generation `after` (the last one of the previous page)."""
    end = await page_end(pool, "SELECT requested_at, id FROM generations WHERE id = $1", "generation", after)
    # Descending time but ascending id, as queries.runs.
    rows = await pool.fetch(
        "SELECT * FROM generations WHERE ($1::text IS NULL OR id = $1)"
        " AND ($2::timestamptz IS NULL OR (requested_at <= $2 AND (requested_at < $2 OR id > $3)))"
        " ORDER BY requested_at DESC, id LIMIT $4",
        generation_id, *end, limit,
    )
    sample_rows = await pool.fetch(
        SAMPLE_SQL + " WHERE s.generation_id = ANY($1::text[]) ORDER BY s.generation_id, s.index",
        [row["id"] for row in rows],
    )
    by_generation: dict[str, list[Sample]] = {}
    for row in sample_rows:
        by_generation.setdefault(row["generation_id"], []).append(sample_from(row))
    return [Generation(**row, samples=by_generation.get(row["id"], [])) for row in rows]


async def generation(pool: asyncpg.Pool, generation_id: str) -> Generation:
    found = await generations(pool, generation_id)
    if not found:
        raise NotFound("generation", generation_id)
    return found[0]


# --- comparisons --------------------------------------------------------------------------------
# Each pair with the two samples of its (prompt, index), one per side, where they exist.
PAIRS_SQL = """
    SELECT p.id, p.comparison_id, p.prompt_index, p.first, p.outcome,
           sa.id AS a_sample_id, sb.id AS b_sample_id
    FROM comparison_pairs p
    JOIN comparison_generations ga ON ga.comparison_id = p.comparison_id AND ga.prompt_index = p.prompt_index
                                   AND ga.side = 'a'
    JOIN comparison_generations gb ON gb.comparison_id = p.comparison_id AND gb.prompt_index = p.prompt_index
                                   AND gb.side = 'b'
    LEFT JOIN samples sa ON sa.generation_id = ga.generation_id AND sa.index = p.sample_index
    LEFT JOIN samples sb ON sb.generation_id = gb.generation_id AND sb.index = p.sample_index
    WHERE p.comparison_id = ANY($1::text[])
"""


async def _comparison_row(pool: asyncpg.Pool, comparison_id: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM comparisons WHERE id = $1", comparison_id)
    if row is None:
        raise NotFound("comparison", comparison_id)
    return row


async def comparison(pool: asyncpg.Pool, comparison_id: str) -> Comparison:
    [found] = await _with_progress(pool, [await _comparison_row(pool, comparison_id)])
    return found


async def comparisons(pool: asyncpg.Pool, after: str | None = None, limit: int | None = None) -> list[Comparison]:
    """Newest first; `limit` of them after the comparison `after`."""
    end = await page_end(pool, "SELECT created_at, id FROM comparisons WHERE id = $1", "comparison", after)
    # Descending time but ascending id, as queries.runs.
    rows = await pool.fetch(
        "SELECT * FROM comparisons"
        " WHERE $1::timestamptz IS NULL OR (created_at <= $1 AND (created_at < $1 OR id > $2))"
        " ORDER BY created_at DESC, id LIMIT $3",
        *end, limit,
    )
    return await _with_progress(pool, rows)


async def _with_progress(pool: asyncpg.Pool, rows: list[asyncpg.Record]) -> list[Comparison]:
    """The comparisons of `rows` with how far their generations and votes have come, read for all
    of them at once (two queries, whatever the number of comparisons)."""
    ids = [row["id"] for row in rows]
    pairs: dict[str, list[asyncpg.Record]] = {comparison_id: [] for comparison_id in ids}
    made: dict[str, list[asyncpg.Record]] = {comparison_id: [] for comparison_id in ids}
    for pair in await pool.fetch(PAIRS_SQL, ids):
        pairs[pair["comparison_id"]].append(pair)
    for generation in await pool.fetch(
            "SELECT c.comparison_id, c.generation_id, c.side, c.prompt_index, g.status FROM comparison_generations c"
            " JOIN generations g ON g.id = c.generation_id WHERE c.comparison_id = ANY($1::text[])"
            " ORDER BY c.prompt_index, c.side", ids):
        made[generation["comparison_id"]].append(generation)
    return [_comparison(row, pairs[row["id"]], made[row["id"]]) for row in rows]


def _comparison(row: asyncpg.Record, pairs: list[asyncpg.Record], made: list[asyncpg.Record]) -> Comparison:
    ready = [pair for pair in pairs if pair["a_sample_id"] and pair["b_sample_id"]]
    voted = [pair for pair in pairs if pair["outcome"] is not None]
    active = sum(1 for generation in made if generation["status"] in ACTIVE_STATUSES)
    return Comparison(
        id=row["id"], name=row["name"], a={"adapter_id": row["a_adapter_id"]}, b={"adapter_id": row["b_adapter_id"]},
        prompts=row["prompts"], samples_per_prompt=row["samples_per_prompt"], seed=row["seed"],
        status=comparison_life.status(active, len(ready), len(voted)),
        pairs_total=len(pairs), pairs_ready=len(ready), pairs_voted=len(voted),
        generations=[ComparisonGenerationStatus(generation_id=generation["generation_id"], side=generation["side"],
                                                prompt_index=generation["prompt_index"], status=generation["status"])
                     for generation in made],
        created_at=row["created_at"],
    )


async def pair_state(pool: asyncpg.Pool, comparison_id: str, pair_id: str) -> PairState:
    await _comparison_row(pool, comparison_id)
    row = await pool.fetchrow(PAIRS_SQL + " AND p.id = $2", [comparison_id], pair_id)
    if row is None:
        raise NotFound("pair", pair_id)
    return PairState(pair_id=pair_id, first=row["first"], ready=bool(row["a_sample_id"] and row["b_sample_id"]),
                     outcome=row["outcome"])


async def next_pair(pool: asyncpg.Pool, comparison_id: str) -> NextPair | None:
    """A ready, unvoted pair in its recorded blind order (prompt by prompt, sample by sample)."""
    row = await _comparison_row(pool, comparison_id)
    pair = await pool.fetchrow(
        PAIRS_SQL + " AND p.outcome IS NULL AND sa.id IS NOT NULL AND sb.id IS NOT NULL"
        " ORDER BY p.prompt_index, p.sample_index LIMIT 1",
        [comparison_id],
    )
    if pair is None:
        return None
    first, second = ((pair["a_sample_id"], pair["b_sample_id"]) if pair["first"] == "a"
                     else (pair["b_sample_id"], pair["a_sample_id"]))
    return NextPair(pair_id=pair["id"], prompt=row["prompts"][pair["prompt_index"]], first_sample_id=first,
                    second_sample_id=second, first_audio_url=f"/api/samples/{first}/audio",
                    second_audio_url=f"/api/samples/{second}/audio")


async def comparison_results(pool: asyncpg.Pool, comparison_id: str) -> ComparisonResults:
    await _comparison_row(pool, comparison_id)
    outcomes = await pool.fetch(
        "SELECT outcome FROM comparison_pairs WHERE comparison_id = $1 AND outcome IS NOT NULL", comparison_id
    )
    found = statistics.results(row["outcome"] for row in outcomes)
    return ComparisonResults(**found.__dict__)
