"""`cadenza rebuild`: empty the read models and fold the whole stream again from sequence 1,
parking what cannot be applied in `dead_letters` as the projector does.

It all happens in one transaction that first locks the projector checkpoint. Rows are DELETEd,
not TRUNCATEd: TRUNCATE would lock every reader out until the end, while with DELETE readers keep
seeing the old read models until the rebuilt ones commit. A projector running meanwhile waits on
the checkpoint row, then finds it moved and reads on from where the rebuild stopped.
"""
from __future__ import annotations

import asyncpg

from services.registry.checkpoint import lock_checkpoint, write_checkpoint
from services.registry.fold import apply_batch
from services.registry.migrate import migrate
from services.settings import Settings

# children before parents, for the foreign keys
READ_MODELS = (
    "dataset_sources", "dataset_filters", "comparison_pairs", "comparison_generations", "comparisons",
    "preferences", "sample_tags", "sample_ratings", "samples", "generations",
    "run_metric_buckets", "run_metrics", "run_logs", "adapters", "runs", "experiments", "preference_pairs", "clips", "datasets",
    "dead_letters",
)
BATCH = 1_000
FETCH_WAIT = 10.0


async def rebuild(settings: Settings) -> int:
    """Replay the stream into empty read models; return the number of events folded."""
    bus = await settings.connect_bus()
    conn = await asyncpg.connect(settings.database_url)
    try:
        await bus.ensure()
        await migrate(conn)
        async with conn.transaction():
            await lock_checkpoint(conn)
            for table in READ_MODELS:
                await conn.execute(f"DELETE FROM {table}")
            await write_checkpoint(conn, 0)
            end = await bus.last_seq()
            position, folded = 0, 0
            reader = await bus.reader(start_seq=1)
            try:
                while position < end:
                    batch = await reader.next_messages(BATCH, wait=FETCH_WAIT)
                    if not batch:
                        raise RuntimeError(f"the stream stopped delivering at sequence {position} of {end}")
                    position = await apply_batch(conn, batch, expected=position)
                    folded += len(batch)
            finally:
                await reader.close()
        return folded
    finally:
        await conn.close()
        await bus.close()
