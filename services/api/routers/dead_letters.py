"""Events the registry parked because it could not apply them (`cadenza dead-letters` replays them)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.api.context import ContextDep
from services.api.pages import NEXT_PAGE_HEADER, page
from services.api.routers.runs import DEFAULT_PAGE, MAX_PAGE
from services.registry import DeadLetter, list_dead_letters

router = APIRouter(prefix="/api", tags=["operations"])


@router.get("/dead-letters", responses=NEXT_PAGE_HEADER)
async def dead_letters(
    request: Request,
    response: Response,
    ctx: ContextDep,
    after_seq: Annotated[int, Query(ge=0, le=2**63 - 1, description="`seq` of the last dead letter read")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> list[DeadLetter]:
    """Each parked event's stream sequence, subject, type and the error that stopped it, in stream
    order, `limit` at a time (1,000 unless asked): the `Link` header names the next page (the last
    `seq` as `after_seq`), and is absent on the last page."""
    letters = await list_dead_letters(ctx.pool, after_seq, limit + 1)
    return page(request, response, letters, limit, lambda letter: {"after_seq": letter.seq})
