"""Comparisons: two sides (adapters or the base model) generated on the same prompts and seeds,
voted pair by pair without knowing which side is which."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.api import studio_commands, studio_queries
from services.api.context import ContextDep
from services.api.pages import NEXT_PAGE_HEADER, page
from services.api.routers.runs import DEFAULT_PAGE, MAX_PAGE
from services.api.studio_schemas import Comparison, ComparisonCreate, ComparisonResults, NextPair, VoteCreate
from services.api.validation import Text

router = APIRouter(prefix="/api", tags=["comparisons"])


@router.post("/comparisons", status_code=201)
async def create_comparison(body: ComparisonCreate, ctx: ContextDep) -> Comparison:
    """Requests one generation per prompt and side, both sides with seed + i on prompt i, and
    draws each pair's blind order."""
    return await studio_commands.create_comparison(ctx, body)


@router.get("/comparisons", responses=NEXT_PAGE_HEADER)
async def list_comparisons(
    request: Request,
    response: Response,
    ctx: ContextDep,
    after: Annotated[Text | None, Query(description="`id` of the last comparison read")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> list[Comparison]:
    """Newest first (ties by `id`), `limit` at a time (1,000 unless asked): the `Link` header names
    the next page (the last comparison's `id` as `after`), and is absent on the last page."""
    return page(request, response, await studio_queries.comparisons(ctx.pool, after, limit + 1), limit)


@router.get("/comparisons/{comparison_id}")
async def get_comparison(comparison_id: str, ctx: ContextDep) -> Comparison:
    return await studio_queries.comparison(ctx.pool, comparison_id)


@router.get(
    "/comparisons/{comparison_id}/next",
    response_model=NextPair,
    responses={200: {"model": NextPair}, 204: {"description": "No ready pair is waiting for a vote"}},
)
async def next_pair(comparison_id: str, ctx: ContextDep) -> Response | NextPair:
    """A ready pair without a vote, its samples in the pair's recorded blind order."""
    pair = await studio_queries.next_pair(ctx.pool, comparison_id)
    return Response(status_code=204) if pair is None else pair


@router.post(
    "/comparisons/{comparison_id}/votes",
    status_code=201,
    responses={409: {"description": "The pair is not ready or already voted"}},
)
async def vote(comparison_id: str, body: VoteCreate, ctx: ContextDep) -> Comparison:
    """`first` / `second` as the pair was shown, or `equal`."""
    return await studio_commands.vote(ctx, comparison_id, body)


@router.get("/comparisons/{comparison_id}/results")
async def results(comparison_id: str, ctx: ContextDep) -> ComparisonResults:
    return await studio_queries.comparison_results(ctx.pool, comparison_id)
