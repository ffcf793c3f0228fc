"""Experiments: a dataset plus the default training config of their runs."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.api import commands, queries
from services.api.context import ContextDep
from services.api.pages import NEXT_PAGE_HEADER, page
from services.api.routers.runs import DEFAULT_PAGE, MAX_PAGE
from services.api.schemas import Experiment, ExperimentCreate, ExperimentPatch
from services.api.validation import Text

router = APIRouter(prefix="/api", tags=["experiments"])


@router.post("/experiments", status_code=201)
async def create_experiment(body: ExperimentCreate, ctx: ContextDep) -> Experiment:
    return await commands.create_experiment(ctx, body)


@router.get("/experiments", responses=NEXT_PAGE_HEADER)
async def list_experiments(
    request: Request,
    response: Response,
    ctx: ContextDep,
    after: Annotated[Text | None, Query(description="`id` of the last experiment read")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> list[Experiment]:
    """Oldest first (ties by `id`), each with all its runs, `limit` at a time (1,000 unless asked):
    the `Link` header names the next page (the last experiment's `id` as `after`), and is absent on
    the last page."""
    return page(request, response, await queries.experiments(ctx.pool, after=after, limit=limit + 1), limit)


@router.get("/experiments/{experiment_id}")
async def get_experiment(experiment_id: str, ctx: ContextDep) -> Experiment:
    return await queries.experiment(ctx.pool, experiment_id)


@router.patch("/experiments/{experiment_id}")
async def update_experiment(experiment_id: str, body: ExperimentPatch, ctx: ContextDep) -> Experiment:
    return await commands.update_experiment(ctx, experiment_id, body)
