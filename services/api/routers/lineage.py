"""Where an adapter came from, back through the feedback loop."""
from __future__ import annotations

from fastapi import APIRouter

from services.api import lineage as lineage_query
from services.api.context import ContextDep
from services.api.studio_schemas import Lineage

router = APIRouter(prefix="/api", tags=["adapters"])


@router.get("/adapters/{adapter_id}/lineage")
async def adapter_lineage(adapter_id: str, ctx: ContextDep) -> Lineage:
    """The adapter → its run → the run's dataset → the samples and comparison votes it was drawn
    from → the adapters that generated those samples → their runs, and so on."""
    return await lineage_query.lineage(ctx.pool, adapter_id)
