"""Events the registry parked because it could not apply them (`cadenza dead-letters` replays them)."""
from __future__ import annotations

from fastapi import APIRouter

from services.api.context import ContextDep
from services.registry import DeadLetter, list_dead_letters

router = APIRouter(prefix="/api", tags=["operations"])


@router.get("/dead-letters")
async def dead_letters(ctx: ContextDep) -> list[DeadLetter]:
    """Each parked event's stream sequence, subject, type and the error that stopped it, in stream order."""
    return await list_dead_letters(ctx.pool)
