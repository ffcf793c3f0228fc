"""An adapter's lineage: the run that trained it, that run's dataset, the samples and comparison
votes the dataset was drawn from, and, the same way back, the adapters that generated those samples,
so the studio loop can be followed over several rounds."""
from __future__ import annotations

import asyncpg

from services.api import queries
from services.api.studio_schemas import Lineage, LineageComparison, LineageDataset, LineageRun, LineageSample


async def lineage(pool: asyncpg.Pool, adapter_id: str, descendants: frozenset[str] = frozenset()) -> Lineage:
    """`descendants` are the adapters already on the way here: an adapter never learns from one of
    them (it existed first), but the walk does not rely on that."""
    adapter = await queries.adapter(pool, adapter_id)
    run = await pool.fetchrow("SELECT id, name, status, dataset_id FROM runs WHERE id = $1", adapter.run_id)
    dataset = await queries.dataset(pool, run["dataset_id"])
    drawn_with = await pool.fetchval("SELECT filter FROM dataset_filters WHERE dataset_id = $1", dataset.id)
    samples = await pool.fetch(
        "SELECT DISTINCT s.id, s.generation_id, s.prompt, s.adapter_id, s.created_at FROM dataset_sources d"
        " JOIN samples s ON s.id = d.sample_id WHERE d.dataset_id = $1 ORDER BY s.created_at, s.id",
        dataset.id,
    )
    comparisons = await pool.fetch(
        "SELECT c.id, c.name, c.a_adapter_id, c.b_adapter_id, count(DISTINCT d.item_id) AS votes_taken"
        " FROM dataset_sources d JOIN comparisons c ON c.id = d.comparison_id WHERE d.dataset_id = $1"
        " GROUP BY c.id ORDER BY c.created_at, c.id",
        dataset.id,
    )
    parents = sorted({row["adapter_id"] for row in samples if row["adapter_id"] is not None} - descendants - {adapter_id})
    return Lineage(
        adapter_id=adapter.id, name=adapter.name, base_model=adapter.base_model,
        run=LineageRun(
            id=run["id"], name=run["name"], status=run["status"],
            dataset=LineageDataset(
                id=dataset.id, name=dataset.name, kind=dataset.kind, filter=drawn_with,
                samples=[LineageSample(**{key: row[key] for key in ("id", "generation_id", "prompt", "adapter_id")})
                         for row in samples],
                comparisons=[LineageComparison(**row) for row in comparisons],
            ),
        ),
        learned_from=[await lineage(pool, parent, descendants | {adapter_id}) for parent in parents],
        learned_from_base_model=any(row["adapter_id"] is None for row in samples),
    )
