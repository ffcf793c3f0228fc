"""Comparisons: two sides (adapters or the base model) generated on the same prompts and seeds,
voted pair by pair without knowing which side is which."""
from __future__ import annotations

from fastapi import APIRouter, Response

from services.api import studio_commands, studio_queries
from services.api.context import ContextDep
from services.api.studio_schemas import Comparison, ComparisonCreate, ComparisonResults, NextPair, VoteCreate

router = APIRouter(prefix="/api", tags=["comparisons"])


@router.post("/comparisons", status_code=201)
async def create_comparison(body: ComparisonCreate, ctx: ContextDep) -> Comparison:
    """Requests one generation per prompt and side, both sides with seed + i on prompt i, and
    draws each pair's blind order."""
    return await studio_commands.create_comparison(ctx, body)


@router.get("/comparisons")
async def list_comparisons(ctx: ContextDep) -> list[Comparison]:
    return await studio_queries.comparisons(ctx.pool)


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
