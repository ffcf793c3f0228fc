"""Experiments: a dataset plus the default training config of their runs."""
from __future__ import annotations

from fastapi import APIRouter

from services.api import commands, queries
from services.api.context import ContextDep
from services.api.schemas import Experiment, ExperimentCreate, ExperimentPatch

router = APIRouter(prefix="/api", tags=["experiments"])


@router.post("/experiments", status_code=201)
async def create_experiment(body: ExperimentCreate, ctx: ContextDep) -> Experiment:
    return await commands.create_experiment(ctx, body)


@router.get("/experiments")
async def list_experiments(ctx: ContextDep) -> list[Experiment]:
    return await queries.experiments(ctx.pool)


@router.get("/experiments/{experiment_id}")
async def get_experiment(experiment_id: str, ctx: ContextDep) -> Experiment:
    return await queries.experiment(ctx.pool, experiment_id)


@router.patch("/experiments/{experiment_id}")
async def update_experiment(experiment_id: str, body: ExperimentPatch, ctx: ContextDep) -> Experiment:
    return await commands.update_experiment(ctx, experiment_id, body)
