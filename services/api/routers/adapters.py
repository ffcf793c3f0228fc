"""Adapters the trainer registered, and their weights."""
from __future__ import annotations

from pathlib import PurePosixPath

from fastapi import APIRouter, Response

from events.base import ObjectRef
from services.api import queries
from services.api.context import ContextDep
from services.api.responses import download
from services.api.schemas import Adapter

router = APIRouter(prefix="/api", tags=["adapters"])


@router.get("/adapters")
async def list_adapters(ctx: ContextDep) -> list[Adapter]:
    return await queries.adapters(ctx.pool)


@router.get("/adapters/{adapter_id}")
async def get_adapter(adapter_id: str, ctx: ContextDep) -> Adapter:
    return await queries.adapter(ctx.pool, adapter_id)


@router.get(
    "/adapters/{adapter_id}/download",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "The PEFT adapter folder, zipped"}},
)
async def download_adapter(adapter_id: str, ctx: ContextDep) -> Response:
    adapter = await queries.adapter(ctx.pool, adapter_id)
    ref = ObjectRef(bucket=adapter.bucket, name=adapter.object_name, sha256=adapter.sha256, size=adapter.size)
    # The trainer stores a zip; should it store another format, the download keeps that suffix.
    suffix = PurePosixPath(adapter.object_name).suffix or ".zip"
    media_type = "application/zip" if suffix == ".zip" else "application/octet-stream"
    return download(await ctx.bus.get_object(ref), media_type, f"{adapter.name}{suffix}")
