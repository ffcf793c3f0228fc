"""Datasets, their clips and preference pairs, and the stored audio."""
from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from pydantic import AfterValidator

from events.base import ObjectRef
from services.api import commands, feedback_datasets, queries
from services.api.audio import content_type
from services.api.context import ContextDep
from services.api.pages import NEXT_PAGE_HEADER, page
from services.api.responses import download
from services.api.routers.runs import DEFAULT_PAGE, MAX_PAGE
from services.api.schemas import Clip, Dataset, DatasetCreate, DatasetDetail, Pair
from services.api.validation import Text, storable_text

router = APIRouter(prefix="/api", tags=["datasets"])

Prompt = Annotated[str, Form(min_length=1, description="The text the audio answers"), AfterValidator(storable_text)]


async def read_upload(field: str, file: UploadFile) -> commands.Upload:
    return commands.Upload(field=field, filename=file.filename or field, data=await file.read())


@router.post("/datasets", status_code=201)
async def create_dataset(body: DatasetCreate, ctx: ContextDep) -> Dataset:
    """With `from_feedback`, the dataset is created holding what that filter selects now."""
    if body.from_feedback is not None:
        return await feedback_datasets.create(ctx, body)
    return await commands.create_dataset(ctx, body)


@router.get("/datasets")
async def list_datasets(ctx: ContextDep) -> list[Dataset]:
    return await queries.list_datasets(ctx.pool)


@router.get("/datasets/{dataset_id}", responses=NEXT_PAGE_HEADER)
async def get_dataset(
    dataset_id: str,
    request: Request,
    response: Response,
    ctx: ContextDep,
    after: Annotated[Text | None, Query(description="`id` of the last clip or pair read")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> DatasetDetail:
    """The dataset with its clips (supervised) or pairs (preference) in the order they were added
    (ties by `id`), `limit` of them at a time (1,000 unless asked): the `Link` header names the next
    page (the last item's `id` as `after`), and is absent on the last page. `clip_count` and
    `pair_count` count them all."""
    detail = await queries.dataset_detail(ctx.pool, dataset_id, after, limit + 1)
    return detail.model_copy(update={"clips": page(request, response, detail.clips, limit),
                                     "pairs": page(request, response, detail.pairs, limit)})


@router.get(
    "/datasets/{dataset_id}/export",
    response_class=Response,
    responses={200: {"content": {"application/jsonl": {}}, "description": "One JSON object per line"}},
)
async def export_dataset(dataset_id: str, ctx: ContextDep) -> Response:
    """The JSONL the trainer reads: supervised rows `{"prompt", "audio_path"}`, preference rows
    `{"prompt", "chosen_path", "rejected_path"}`. A path is the audio's object name in the clips
    bucket (`<sha256>.<ext>`), relative: fetch each object into one folder under its name (a
    content-addressed cache) and the paths resolve against that folder."""
    detail = await queries.dataset_detail(ctx.pool, dataset_id)
    rows = queries.export_rows(detail.clips if detail.kind == "supervised" else detail.pairs)
    body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return download(body.encode(), "application/jsonl", f"{dataset_id}.jsonl")


@router.post("/datasets/{dataset_id}/clips", status_code=201)
async def add_clip(
    dataset_id: str, ctx: ContextDep, prompt: Prompt, file: Annotated[UploadFile, File()]
) -> Clip:
    return await commands.add_clip(ctx, dataset_id, prompt, await read_upload("file", file))


@router.post("/datasets/{dataset_id}/pairs", status_code=201)
async def add_pair(
    dataset_id: str,
    ctx: ContextDep,
    prompt: Prompt,
    chosen: Annotated[UploadFile, File(description="The preferred audio")],
    rejected: Annotated[UploadFile, File(description="The audio liked less")],
) -> Pair:
    return await commands.add_pair(
        ctx, dataset_id, prompt, await read_upload("chosen", chosen), await read_upload("rejected", rejected)
    )


@router.delete("/datasets/{dataset_id}/clips/{clip_id}", status_code=204)
async def remove_clip(dataset_id: str, clip_id: str, ctx: ContextDep) -> Response:
    """Runs requested from now on train without the clip; runs requested before still have it."""
    await commands.remove_clip(ctx, dataset_id, clip_id)
    return Response(status_code=204)


@router.delete("/datasets/{dataset_id}/pairs/{pair_id}", status_code=204)
async def remove_pair(dataset_id: str, pair_id: str, ctx: ContextDep) -> Response:
    """Runs requested from now on train without the pair; runs requested before still have it."""
    await commands.remove_pair(ctx, dataset_id, pair_id)
    return Response(status_code=204)


@router.get("/clips/{clip_id}/audio", response_class=Response, responses={200: {"content": {"audio/*": {}}}})
async def clip_audio(clip_id: str, ctx: ContextDep) -> Response:
    clip = await queries.clip(ctx.pool, clip_id)
    data = await ctx.bus.get_object(ObjectRef(bucket=clip.bucket, name=clip.object_name, sha256=clip.sha256, size=clip.size))
    return download(data, content_type(clip.format), clip.filename, disposition="inline")
