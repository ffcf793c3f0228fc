"""How the studio's events change the read models: generations and their samples, feedback on
samples, comparisons, and what datasets drawn from feedback took. Plain SQL, one function per
event type, folded in the projector's transaction like every handler.

An event folded twice changes nothing: rows keyed by the ids the event carries are inserted with
ON CONFLICT DO NOTHING, and a generation's status only moves forward (events.generations).
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from events.base import Envelope, Event
from events.catalogue import (
    ComparisonCreated, ComparisonVoted, DatasetDrawnFromFeedback, GenerationCancelled, GenerationCancelRequested,
    GenerationCompleted, GenerationFailed, GenerationHandedBack, GenerationProgressed, GenerationRequested,
    GenerationStarted, PreferenceRecorded, SampleFavorited, SampleGenerated, SampleRated, SampleTagged, SampleUnfavorited,
    SampleUntagged,
)
from events.generations import ACTIVE, GenerationStatus

NOT_FINISHED = f"status IN ({', '.join(sorted(repr(str(status)) for status in ACTIVE))})"


# --- generations --------------------------------------------------------------------------------
async def generation_requested(conn: asyncpg.Connection, envelope: Envelope, event: GenerationRequested) -> None:
    await conn.execute(
        "INSERT INTO generations (id, prompt, adapter_id, base_model, duration_seconds, seed, num_samples,"
        " guidance_scale, temperature, top_k, top_p, comparison_id, status, requested_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (id) DO NOTHING",
        event.generation_id, event.prompt, event.adapter_id, event.base_model, event.duration_seconds, event.seed,
        event.num_samples, event.guidance_scale, event.temperature, event.top_k, event.top_p, event.comparison_id,
        GenerationStatus.QUEUED, envelope.occurred_at,
    )


async def generation_started(conn: asyncpg.Connection, envelope: Envelope, event: GenerationStarted) -> None:
    # a later attempt (after a worker died) takes over; a late start of an earlier one does not
    await conn.execute(
        "UPDATE generations SET status = $5, attempt = $2, worker_id = $3, steps_done = NULL, steps_total = NULL,"
        " started_at = COALESCE(started_at, $4)"
        f" WHERE id = $1 AND {NOT_FINISHED} AND attempt < $2",
        event.generation_id, event.attempt, event.worker_id, envelope.occurred_at, GenerationStatus.RUNNING,
    )


async def generation_progressed(conn: asyncpg.Connection, envelope: Envelope, event: GenerationProgressed) -> None:
    await conn.execute(
        "UPDATE generations SET steps_done = $3, steps_total = $4"
        f" WHERE id = $1 AND {NOT_FINISHED} AND attempt = $2 AND COALESCE(steps_done, -1) < $3",
        event.generation_id, event.attempt, event.steps_done, event.steps_total,
    )


async def sample_generated(conn: asyncpg.Connection, envelope: Envelope, event: SampleGenerated) -> None:
    audio = event.audio
    await conn.execute(
        "INSERT INTO samples (id, generation_id, index, prompt, adapter_id, base_model, seed, bucket, object_name,"
        " sha256, size, filename, format, duration_seconds, sample_rate, channels, seconds_taken, created_at)"
        " SELECT $1, g.id, $3, g.prompt, g.adapter_id, g.base_model, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
        " $14, $15 FROM generations g WHERE g.id = $2"
        " ON CONFLICT DO NOTHING",
        event.sample_id, event.generation_id, event.index, event.seed, audio.bucket, audio.name, audio.sha256,
        audio.size, audio.filename, audio.format, audio.duration_seconds, audio.sample_rate, audio.channels,
        event.seconds_taken, envelope.occurred_at,
    )


async def generation_completed(conn: asyncpg.Connection, envelope: Envelope, event: GenerationCompleted) -> None:
    await conn.execute(
        "UPDATE generations SET status = $5, attempt = GREATEST(attempt, $2), seconds_taken = $3, finished_at = $4"
        f" WHERE id = $1 AND {NOT_FINISHED}",
        event.generation_id, event.attempt, event.seconds_taken, envelope.occurred_at, GenerationStatus.COMPLETED,
    )


async def generation_failed(conn: asyncpg.Connection, envelope: Envelope, event: GenerationFailed) -> None:
    await conn.execute(
        "UPDATE generations SET status = $5, attempt = GREATEST(attempt, $2), error = $3, finished_at = $4"
        f" WHERE id = $1 AND {NOT_FINISHED}",
        event.generation_id, event.attempt, event.error, envelope.occurred_at, GenerationStatus.FAILED,
    )


async def generation_handed_back(conn: asyncpg.Connection, envelope: Envelope, event: GenerationHandedBack) -> None:
    """Nothing to show: the generation stays running until the attempt that takes it over starts."""


async def generation_cancel_requested(conn: asyncpg.Connection, envelope: Envelope,
                                      event: GenerationCancelRequested) -> None:
    # it stays queued or running until GenerationCancelled says it stopped
    await conn.execute(f"UPDATE generations SET cancel_requested = true WHERE id = $1 AND {NOT_FINISHED}",
                       event.generation_id)


async def generation_cancelled(conn: asyncpg.Connection, envelope: Envelope, event: GenerationCancelled) -> None:
    await conn.execute(
        "UPDATE generations SET status = $4, attempt = GREATEST(attempt, $2), finished_at = $3"
        f" WHERE id = $1 AND {NOT_FINISHED}",
        event.generation_id, event.attempt, envelope.occurred_at, GenerationStatus.CANCELLED,
    )


# --- feedback on samples ------------------------------------------------------------------------
async def sample_rated(conn: asyncpg.Connection, envelope: Envelope, event: SampleRated) -> None:
    # stream order: the later rating of a criterion is the one kept
    await conn.execute(
        "INSERT INTO sample_ratings (sample_id, criterion, rating, rated_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (sample_id, criterion) DO UPDATE SET rating = EXCLUDED.rating, rated_at = EXCLUDED.rated_at",
        event.sample_id, event.criterion, event.rating, envelope.occurred_at,
    )


async def sample_tagged(conn: asyncpg.Connection, envelope: Envelope, event: SampleTagged) -> None:
    await conn.execute(
        "INSERT INTO sample_tags (sample_id, tag, tagged_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        event.sample_id, event.tag, envelope.occurred_at,
    )


async def sample_untagged(conn: asyncpg.Connection, envelope: Envelope, event: SampleUntagged) -> None:
    await conn.execute("DELETE FROM sample_tags WHERE sample_id = $1 AND tag = $2", event.sample_id, event.tag)


async def sample_favorited(conn: asyncpg.Connection, envelope: Envelope, event: SampleFavorited) -> None:
    await conn.execute("UPDATE samples SET favorite = true WHERE id = $1", event.sample_id)


async def sample_unfavorited(conn: asyncpg.Connection, envelope: Envelope, event: SampleUnfavorited) -> None:
    await conn.execute("UPDATE samples SET favorite = false WHERE id = $1", event.sample_id)


async def preference_recorded(conn: asyncpg.Connection, envelope: Envelope, event: PreferenceRecorded) -> None:
    await conn.execute(
        "INSERT INTO preferences (id, chosen_sample_id, rejected_sample_id, created_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (id) DO NOTHING",
        event.preference_id, event.chosen_sample_id, event.rejected_sample_id, envelope.occurred_at,
    )


# --- comparisons --------------------------------------------------------------------------------
async def comparison_created(conn: asyncpg.Connection, envelope: Envelope, event: ComparisonCreated) -> None:
    inserted = await conn.fetchval(
        "INSERT INTO comparisons (id, name, a_adapter_id, b_adapter_id, prompts, samples_per_prompt, seed,"
        " created_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8) ON CONFLICT (id) DO NOTHING RETURNING id",
        event.comparison_id, event.name, event.a.adapter_id, event.b.adapter_id, json.dumps(event.prompts),
        event.samples_per_prompt, event.seed, envelope.occurred_at,
    )
    if inserted is None:
        return
    await conn.executemany(
        "INSERT INTO comparison_generations (comparison_id, generation_id, side, prompt_index) VALUES ($1, $2, $3, $4)",
        [(event.comparison_id, g.generation_id, g.side, g.prompt_index) for g in event.generations],
    )
    await conn.executemany(
        "INSERT INTO comparison_pairs (id, comparison_id, prompt_index, sample_index, first) VALUES ($1, $2, $3, $4, $5)",
        [(p.pair_id, event.comparison_id, p.prompt_index, p.sample_index, p.first) for p in event.pairs],
    )


async def comparison_voted(conn: asyncpg.Connection, envelope: Envelope, event: ComparisonVoted) -> None:
    # a pair takes one vote: the first one stored counts
    await conn.execute(
        "UPDATE comparison_pairs SET choice = $3, outcome = $4, voted_at = $5"
        " WHERE id = $1 AND comparison_id = $2 AND outcome IS NULL",
        event.pair_id, event.comparison_id, event.choice, event.outcome, envelope.occurred_at,
    )


# --- datasets drawn from feedback ---------------------------------------------------------------
async def dataset_drawn_from_feedback(conn: asyncpg.Connection, envelope: Envelope,
                                      event: DatasetDrawnFromFeedback) -> None:
    await conn.execute(
        "INSERT INTO dataset_filters (dataset_id, filter) VALUES ($1, $2::jsonb) ON CONFLICT DO NOTHING",
        event.dataset_id, event.filter.model_dump_json(),
    )
    rows = [(event.dataset_id, clip.clip_id, "clip", clip.sample_id, None, None, None) for clip in event.clips]
    for pair in event.pairs:
        source = (pair.comparison_id, pair.comparison_pair_id, pair.preference_id)
        rows.append((event.dataset_id, pair.pair_id, "chosen", pair.chosen_sample_id, *source))
        rows.append((event.dataset_id, pair.pair_id, "rejected", pair.rejected_sample_id, *source))
    await conn.executemany(
        "INSERT INTO dataset_sources (dataset_id, item_id, role, sample_id, comparison_id, comparison_pair_id,"
        " preference_id) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        rows,
    )


Handler = Callable[[asyncpg.Connection, Envelope, Any], Awaitable[None]]

STUDIO_HANDLERS: dict[type[Event], Handler] = {
    GenerationRequested: generation_requested,
    GenerationStarted: generation_started,
    GenerationProgressed: generation_progressed,
    SampleGenerated: sample_generated,
    GenerationCompleted: generation_completed,
    GenerationFailed: generation_failed,
    GenerationHandedBack: generation_handed_back,
    GenerationCancelRequested: generation_cancel_requested,
    GenerationCancelled: generation_cancelled,
    SampleRated: sample_rated,
    SampleTagged: sample_tagged,
    SampleUntagged: sample_untagged,
    SampleFavorited: sample_favorited,
    SampleUnfavorited: sample_unfavorited,
    PreferenceRecorded: preference_recorded,
    ComparisonCreated: comparison_created,
    ComparisonVoted: comparison_voted,
    DatasetDrawnFromFeedback: dataset_drawn_from_feedback,
}
