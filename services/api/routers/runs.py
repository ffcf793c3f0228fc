"""Runs: requested on an experiment, trained by the trainer service, cancelled here."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from events.runs import RunStatus
from services.api import commands, live, queries
from services.api.answers import json_answer
from services.api.context import ContextDep
from services.api.pages import NEXT_PAGE_HEADER, next_link, page
from services.api.schemas import LogLine, Metric, Run, RunCreate, RunEvent
from services.api.validation import Text

router = APIRouter(prefix="/api", tags=["runs"])

# A chart is at most a few thousand pixels wide: more points than that draw nothing more.
DEFAULT_METRIC_POINTS = 2000
MAX_METRIC_POINTS = 10_000
DEFAULT_PAGE = 1000
MAX_PAGE = 10_000


@router.post("/experiments/{experiment_id}/runs", status_code=201)
async def request_run(experiment_id: str, body: RunCreate, ctx: ContextDep) -> Run:
    return await commands.request_run(ctx, experiment_id, body)


@router.get("/runs", responses=NEXT_PAGE_HEADER)
async def list_runs(
    request: Request,
    response: Response,
    ctx: ContextDep,
    experiment_id: Text | None = None,
    after: Annotated[Text | None, Query(description="`id` of the last run read")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> list[Run]:
    """Newest request first (ties by `id`), `limit` at a time (1,000 unless asked): the `Link`
    header names the next page (the last run's `id` as `after`), and is absent on the last page."""
    return page(request, response, await queries.runs(ctx.pool, experiment_id, after, limit + 1), limit)


@router.get("/runs/{run_id}")
async def get_run(run_id: str, ctx: ContextDep) -> Run:
    return await queries.run(ctx.pool, run_id)


@router.get("/runs/{run_id}/metrics", response_model=list[Metric])
async def run_metrics(
    run_id: str,
    ctx: ContextDep,
    max_points: Annotated[int, Query(ge=4, le=MAX_METRIC_POINTS)] = DEFAULT_METRIC_POINTS,
) -> Response:
    """Each split's points in step order, downsampled to at most `max_points`: of each run of
    consecutive points the lowest and highest loss and the last point are kept (and the first
    point), so spikes and the trend survive."""
    return json_answer(await queries.metrics_json(ctx.pool, ctx.answers, run_id, max_points))


@router.get("/runs/{run_id}/logs", responses=NEXT_PAGE_HEADER)
async def run_logs(
    request: Request,
    response: Response,
    run_id: str,
    ctx: ContextDep,
    after: Annotated[str | None, Query(pattern=r"^\d{1,9}\.\d{1,9}\.\d{1,9}$",
                                       description="`attempt.chunk.line_no` of the last line read")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> list[LogLine]:
    """The run's log lines in order, `limit` at a time (1,000 unless asked): the `Link` header
    names the next page (the last line's `attempt.chunk.line_no` as `after`), and is absent on the
    last page; a short page is the last too."""
    position = tuple(int(part) for part in after.split(".")) if after is not None else None
    lines = await queries.logs(ctx.pool, run_id, position, limit + 1)
    return page(request, response, lines, limit, lambda line: {"after": f"{line.attempt}.{line.chunk}.{line.line_no}"})


@router.post(
    "/runs/{run_id}/cancel",
    responses={202: {"model": Run, "description": "Running: the trainer was asked to stop"},
               409: {"description": "The run is already finished"}},
)
async def cancel_run(run_id: str, ctx: ContextDep, response: Response) -> Run:
    """A queued run is cancelled at once (200); a running one is asked to stop (202) and becomes
    `cancelled` once its trainer has stopped the process."""
    run = await commands.cancel_run(ctx, run_id)
    response.status_code = 200 if run.status is RunStatus.CANCELLED else 202
    return run


@router.get("/runs/{run_id}/events", response_model=list[RunEvent], responses=NEXT_PAGE_HEADER)
async def run_history(
    request: Request,
    run_id: str,
    ctx: ContextDep,
    after_seq: Annotated[int, Query(ge=0, le=2**63 - 1, description="Stream sequence of the last event read")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> Response:
    """The run's history as stored on the stream (the audit view), `limit` events at a time (1,000
    unless asked): the `Link` header names the next page (the last event's `seq` as `after_seq`),
    and is absent on the last page; a short page is the last too."""
    history = await live.run_history_json(ctx, run_id, after_seq, limit)
    answer = json_answer(history)
    if history.next_after_seq is not None:
        answer.headers["Link"] = next_link(request, {"after_seq": history.next_after_seq}, limit)
    return answer


@router.get(
    "/runs/{run_id}/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
)
async def run_stream(
    run_id: str, ctx: ContextDep, last_event_id: Annotated[int | None, Header()] = None
) -> StreamingResponse:
    """The run's new events as server-sent events (`id` is the stream sequence, `event` the type,
    `data` a RunEvent); ends after the run's final event."""
    await queries.require_run(ctx.pool, run_id)
    return StreamingResponse(
        live.run_events(ctx, run_id, last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )
