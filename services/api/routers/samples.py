"""Samples the generation workers made, their audio, and the feedback users give on them."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from services.api import studio_commands, studio_queries
from services.api.audio import content_type
from services.api.byte_ranges import ranged
from services.api.context import ContextDep
from services.api.pages import NEXT_PAGE_HEADER, page
from services.api.routers.runs import DEFAULT_PAGE, MAX_PAGE
from services.api.studio_queries import SampleFilter
from services.api.studio_schemas import RatingCreate, Sample, TagCreate
from services.api.validation import Text

router = APIRouter(prefix="/api", tags=["samples"])


@router.get("/samples", responses=NEXT_PAGE_HEADER)
async def list_samples(
    request: Request,
    response: Response,
    ctx: ContextDep,
    adapter_id: Text | None = None,
    base_model: Text | None = None,
    min_rating: Annotated[int | None, Query(ge=1, le=5, description="On the latest `overall` rating")] = None,
    tag: Text | None = None,
    favorite: bool | None = None,
    q: Annotated[Text | None, Query(description="Text in the prompt, any case")] = None,
    after: Annotated[Text | None, Query(description="`id` of the last sample read, which may no longer pass "
                                                    "the filters")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> list[Sample]:
    """Newest generation first (ties by its `id`), each one's samples in order, `limit` at a time
    (1,000 unless asked): the `Link` header names the next page (the last sample's `id` as `after`,
    the filters kept), and is absent on the last page."""
    where = SampleFilter(adapter_id=adapter_id, base_model=base_model, min_rating=min_rating, tag=tag,
                         favorite=favorite, q=q)
    return page(request, response, await studio_queries.samples(ctx.pool, where, after, limit + 1), limit)


@router.get("/samples/{sample_id}")
async def get_sample(sample_id: str, ctx: ContextDep) -> Sample:
    return await studio_queries.sample(ctx.pool, sample_id)


@router.get(
    "/samples/{sample_id}/audio",
    response_class=Response,
    responses={200: {"content": {"audio/*": {}}}, 206: {"description": "The byte range asked for"},
               416: {"description": "The range lies past the end"}},
)
async def sample_audio(sample_id: str, ctx: ContextDep, range: Annotated[str | None, Header()] = None) -> Response:
    """The audio, whole or the one byte range a `Range` header asks for."""
    ref, format = await studio_queries.sample_object(ctx.pool, sample_id)
    return ranged(await ctx.bus.get_object(ref), content_type(format), range)


@router.post("/samples/{sample_id}/ratings", status_code=201)
async def rate_sample(sample_id: str, body: RatingCreate, ctx: ContextDep) -> Sample:
    """A later rating of the same criterion replaces the earlier one."""
    return await studio_commands.rate(ctx, sample_id, body)


@router.post("/samples/{sample_id}/tags", status_code=201)
async def tag_sample(sample_id: str, body: TagCreate, ctx: ContextDep) -> Sample:
    return await studio_commands.tag(ctx, sample_id, body)


@router.delete("/samples/{sample_id}/tags/{tag}")
async def untag_sample(sample_id: str, tag: str, ctx: ContextDep) -> Sample:
    return await studio_commands.untag(ctx, sample_id, tag)


@router.put("/samples/{sample_id}/favorite")
async def favorite_sample(sample_id: str, ctx: ContextDep) -> Sample:
    return await studio_commands.set_favorite(ctx, sample_id, True)


@router.delete("/samples/{sample_id}/favorite")
async def unfavorite_sample(sample_id: str, ctx: ContextDep) -> Sample:
    return await studio_commands.set_favorite(ctx, sample_id, False)
