"""How long a run's checkpoint objects are kept.

While a run trains, its newest KEPT_CHECKPOINTS checkpoints are kept: the newest is what a later
attempt resumes from; the one before it is kept for an attempt that read the run's history just
before the newest was published and may still be fetching it. Older ones are deleted as each new
one is saved (after its CheckpointSaved is on the stream), and all of them once the run is
finished: completed, its adapter supersedes them; failed or cancelled, it is never resumed. (Each
attempt's local folder is removed when the attempt ends, in `run.py`.)"""
from __future__ import annotations

from events.base import ObjectRef
from events.bus import Bus

KEPT_CHECKPOINTS = 2


async def delete_superseded(bus: Bus, saved: list[ObjectRef], keep: int = KEPT_CHECKPOINTS) -> list[ObjectRef]:
    """Delete all but the newest `keep` of `saved` (oldest first); return those kept."""
    kept = saved[len(saved) - keep:] if keep else []
    for ref in saved[: len(saved) - len(kept)]:
        await bus.delete_object(ref)
    return kept
