"""Datasets drawn from feedback: the samples (supervised) or the votes and preferences (preference)
a filter selects, counted for a preview or taken as a snapshot into a new dataset.

The snapshot is in the events: DatasetDrawnFromFeedback records the filter and which samples each
item is, and the ClipAdded / PreferencePairAdded events hold the items with the samples' own audio
objects (referenced, not copied), which is what the trainer exports. Feedback given later changes
neither.
"""
from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from events.base import AudioFile, Event
from events.codec import decode
from events.catalogue import (
    ClipAdded, DatasetCreated, DatasetDrawnFromFeedback, DatasetKind, DrawnClip, DrawnPair, FeedbackFilter,
    PreferencePairAdded,
)
from events.subjects import event_subject
from services.api import queries
from services.api.commands import publish
from services.api.context import Context
from services.api.errors import NotFound, invalid
from services.api.schemas import Dataset, DatasetCreate
from services.api.studio_schemas import FeedbackFilterBody

SUPERVISED_ONLY = ("adapter_id", "min_rating", "max_rating", "tags")
PREFERENCE_ONLY = ("comparison_ids", "include_free_pairs")
AUDIO_COLUMNS = ("bucket", "object_name", "sha256", "size", "filename", "format", "duration_seconds",
                 "sample_rate", "channels")


def _sample_columns(alias: str) -> str:
    return ", ".join(f"{alias}.{column} AS {alias}_{column}" for column in ("id", "prompt", *AUDIO_COLUMNS))


SUPERVISED_SQL = f"""
    SELECT {_sample_columns('s')}
    FROM samples s
    WHERE ($1::text IS NULL OR s.adapter_id = $1)
      AND ($2::int IS NULL OR EXISTS (SELECT 1 FROM sample_ratings r WHERE r.sample_id = s.id
                                      AND r.criterion = 'overall' AND r.rating >= $2))
      AND ($3::int IS NULL OR EXISTS (SELECT 1 FROM sample_ratings r WHERE r.sample_id = s.id
                                      AND r.criterion = 'overall' AND r.rating <= $3))
      AND (SELECT count(*) FROM sample_tags t WHERE t.sample_id = s.id AND t.tag = ANY($4::text[]))
          = cardinality($4::text[])
      AND ($5::text IS NULL OR strpos(lower(s.prompt), lower($5)) > 0)
      AND ($6::timestamptz IS NULL OR s.created_at >= $6)
      AND ($7::timestamptz IS NULL OR s.created_at < $7)
    ORDER BY s.created_at, s.generation_id, s.index
"""
# Decisive votes of the comparisons named, the winner's sample chosen; then free preferences.
PREFERENCE_SQL = f"""
    SELECT p.comparison_id, p.id AS comparison_pair_id, NULL AS preference_id, voted_at AS at,
           {_sample_columns('chosen')}, {_sample_columns('rejected')}
    FROM comparison_pairs p
    JOIN comparison_generations gw ON gw.comparison_id = p.comparison_id AND gw.prompt_index = p.prompt_index
                                   AND gw.side = p.outcome
    JOIN comparison_generations gl ON gl.comparison_id = p.comparison_id AND gl.prompt_index = p.prompt_index
                                   AND gl.side <> p.outcome
    JOIN samples chosen ON chosen.generation_id = gw.generation_id AND chosen.index = p.sample_index
    JOIN samples rejected ON rejected.generation_id = gl.generation_id AND rejected.index = p.sample_index
    WHERE p.comparison_id = ANY($1::text[]) AND p.outcome IN ('a', 'b')
      AND ($3::text IS NULL OR strpos(lower(chosen.prompt), lower($3)) > 0)
      AND ($4::timestamptz IS NULL OR p.voted_at >= $4)
      AND ($5::timestamptz IS NULL OR p.voted_at < $5)
    UNION ALL
    SELECT NULL, NULL, f.id, f.created_at, {_sample_columns('chosen')}, {_sample_columns('rejected')}
    FROM preferences f
    JOIN samples chosen ON chosen.id = f.chosen_sample_id
    JOIN samples rejected ON rejected.id = f.rejected_sample_id
    WHERE $2::boolean
      AND ($3::text IS NULL OR strpos(lower(chosen.prompt), lower($3)) > 0)
      AND ($4::timestamptz IS NULL OR f.created_at >= $4)
      AND ($5::timestamptz IS NULL OR f.created_at < $5)
    ORDER BY at, comparison_pair_id, preference_id
"""


def _audio(row: asyncpg.Record, alias: str) -> AudioFile:
    fields = {"name" if column == "object_name" else column: row[f"{alias}_{column}"] for column in AUDIO_COLUMNS}
    return AudioFile(**fields)


async def check_filter(ctx: Context, kind: DatasetKind, where: FeedbackFilterBody, loc: tuple[str, ...]) -> None:
    """A 422 (at `loc`, where the filter is in the body) for fields that do not apply to `kind` or bounds that exclude everything; a 404 for an
    unknown adapter or comparison."""
    not_for = PREFERENCE_ONLY if kind == "supervised" else SUPERVISED_ONLY
    for field in not_for:
        if field in where.model_fields_set and getattr(where, field) not in (None, [], False):
            raise invalid((*loc, field), f"does not apply to a {kind} dataset")
    if where.min_rating is not None and where.max_rating is not None and where.min_rating > where.max_rating:
        raise invalid((*loc, "max_rating"), f"is below min_rating ({where.min_rating})")
    if where.since is not None and where.until is not None and where.since >= where.until:
        raise invalid((*loc, "until"), "must be after since")
    if where.adapter_id is not None:
        await queries.adapter(ctx.pool, where.adapter_id)
    for comparison_id in where.comparison_ids:
        if await ctx.pool.fetchval("SELECT id FROM comparisons WHERE id = $1", comparison_id) is None:
            raise NotFound("comparison", comparison_id)


@dataclass(frozen=True)
class Selection:
    clips: list[asyncpg.Record]
    pairs: list[asyncpg.Record]

    @property
    def count(self) -> int:
        return len(self.clips) + len(self.pairs)


async def select(pool: asyncpg.Pool, kind: DatasetKind, where: FeedbackFilter) -> Selection:
    if kind == "supervised":
        rows = await pool.fetch(SUPERVISED_SQL, where.adapter_id, where.min_rating, where.max_rating,
                                sorted(set(where.tags)), where.q, where.since, where.until)
        return Selection(clips=rows, pairs=[])
    rows = await pool.fetch(PREFERENCE_SQL, where.comparison_ids, where.include_free_pairs, where.q, where.since,
                            where.until)
    return Selection(clips=[], pairs=rows)


async def preview(ctx: Context, kind: DatasetKind, where: FeedbackFilterBody) -> int:
    await check_filter(ctx, kind, where, ("body", "filter"))
    return (await select(ctx.pool, kind, where)).count


# What a selected row is drawn from, which names the item made of it.
def _clip_source(sample_id: str) -> str:
    return f"sample {sample_id}"


def _pair_source(comparison_pair_id: str | None, preference_id: str | None) -> str:
    return f"preference {preference_id}" if preference_id is not None else f"comparison pair {comparison_pair_id}"


async def first_drawing(ctx: Context, dataset_id: str) -> DatasetDrawnFromFeedback | None:
    """What this keyed request's first try drew into `dataset_id`, if it was stored."""
    if not ctx.ids.keyed:
        return None
    subject = event_subject(ctx.bus.subject_root, "dataset", dataset_id, DatasetDrawnFromFeedback.event_name())
    stored = await ctx.bus.request_message(subject, ctx.ids.request)
    return None if stored is None else decode(stored.data, stored.subject)[1]


def as_drawn(selection: Selection, drawn: DatasetDrawnFromFeedback) -> Selection:
    """The rows of `selection` that `drawn` took: what a retry publishes again, whatever feedback
    came since its first try."""
    clips = {_clip_source(clip.sample_id) for clip in drawn.clips}
    pairs = {_pair_source(pair.comparison_pair_id, pair.preference_id) for pair in drawn.pairs}
    return Selection(clips=[row for row in selection.clips if _clip_source(row["s_id"]) in clips],
                     pairs=[row for row in selection.pairs
                            if _pair_source(row["comparison_pair_id"], row["preference_id"]) in pairs])


async def create(ctx: Context, body: DatasetCreate) -> Dataset:
    """`body.from_feedback` is the filter. Each item's ids derive from what it is drawn from, and a
    keyed retry draws what its first try did (the first answer), not what the filter selects now."""
    where = body.from_feedback
    assert where is not None
    await check_filter(ctx, body.kind, where, ("body", "from_feedback"))
    dataset_id = ctx.ids.new()
    selection = await select(ctx.pool, body.kind, where)
    if (first := await first_drawing(ctx, dataset_id)) is not None:
        selection = as_drawn(selection, first)
    if selection.count == 0:
        raise invalid(("body", "from_feedback"), f"selects no {'samples' if body.kind == 'supervised' else 'votes'}")
    snapshot = FeedbackFilter(**where.model_dump())
    drawn_clips, drawn_pairs, items = [], [], []
    for row in selection.clips:
        clip_id = ctx.ids.drawn_from(_clip_source(row["s_id"]))
        drawn_clips.append(DrawnClip(clip_id=clip_id, sample_id=row["s_id"]))
        items.append(ClipAdded(dataset_id=dataset_id, clip_id=clip_id, prompt=row["s_prompt"], audio=_audio(row, "s")))
    for row in selection.pairs:
        source = _pair_source(row["comparison_pair_id"], row["preference_id"])
        pair_id = ctx.ids.drawn_from(source)
        drawn_pairs.append(DrawnPair(pair_id=pair_id, chosen_sample_id=row["chosen_id"],
                                     rejected_sample_id=row["rejected_id"], comparison_id=row["comparison_id"],
                                     comparison_pair_id=row["comparison_pair_id"], preference_id=row["preference_id"]))
        # DPO conditions both on one prompt: the chosen sample's (a comparison's two are the same)
        items.append(PreferencePairAdded(
            dataset_id=dataset_id, pair_id=pair_id, prompt=row["chosen_prompt"],
            chosen_clip_id=ctx.ids.drawn_from(f"{source} chosen"), chosen=_audio(row, "chosen"),
            rejected_clip_id=ctx.ids.drawn_from(f"{source} rejected"), rejected=_audio(row, "rejected")))
    events: list[Event] = [
        DatasetCreated(dataset_id=dataset_id, name=body.name, kind=body.kind, description=body.description),
        first if first is not None else DatasetDrawnFromFeedback(dataset_id=dataset_id, filter=snapshot,
                                                                 clips=drawn_clips, pairs=drawn_pairs),
        *items,
    ]
    await publish(ctx, *events)
    return await queries.dataset(ctx.pool, dataset_id)
