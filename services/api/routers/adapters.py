"""Adapters the trainer registered, and their weights."""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from events.base import ObjectRef
from services.api import queries
from services.api.context import ContextDep
from services.api.pages import NEXT_PAGE_HEADER, page
from services.api.responses import download
from services.api.routers.runs import DEFAULT_PAGE, MAX_PAGE
from services.api.schemas import Adapter
from services.api.validation import Text

router = APIRouter(prefix="/api", tags=["adapters"])


@router.get("/adapters", responses=NEXT_PAGE_HEADER)
async def list_adapters(
    request: Request,
    response: Response,
    ctx: ContextDep,
    after: Annotated[Text | None, Query(description="`id` of the last adapter read")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> list[Adapter]:
    """Oldest first (ties by `id`), `limit` at a time (1,000 unless asked): the `Link` header names
    the next page (the last adapter's `id` as `after`), and is absent on the last page."""
    return page(request, response, await queries.adapters(ctx.pool, after, limit + 1), limit)


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
