"""How each event changes the read models: one small function per event type, plain SQL.

Every function runs inside the projector's transaction for the batch the event belongs to. They
are written so that an event folded twice (a duplicate stored after the dedup window, a late
report from an earlier attempt) changes nothing: rows keyed by the ids the event carries are
inserted with ON CONFLICT DO NOTHING, and a run's status only moves forward as `events.runs`
states it: the guards below are written from its statuses.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from events import runs
from events.base import AudioFile, Envelope, Event
from events.catalogue import (
    AdapterSaved, CheckpointSaved, ClipAdded, ClipRemoved, DatasetCreated, DatasetExported, ExperimentCreated,
    ExperimentUpdated, LossReported, PreferencePairAdded, PreferencePairRemoved, RunAttemptFailed, RunCancelled, RunCancelRequested, RunHandedBack,
    RunCompleted, RunFailed, RunLogged, RunRequested, RunStarted,
)
from services.registry.studio_handlers import STUDIO_HANDLERS

# SQL for "the run is not finished yet": nothing changes a finished run's status.
NOT_FINAL = "status IN ({})".format(", ".join(f"'{status}'" for status in sorted(runs.ACTIVE)))


# Written steps further apart than this are summarised as separate step ranges (see `loss_reported`).
SUMMARY_GAP = 1024


# One encoder for every call: json.dumps with any option builds a new encoder each time, which
# costs more than encoding a LossReported's metrics.
_JSON_ENCODER = json.JSONEncoder(sort_keys=True)


def _json(value: Any) -> str | None:
    return None if value is None else _JSON_ENCODER.encode(value)


# --- datasets -----------------------------------------------------------------------------------
async def dataset_created(conn: asyncpg.Connection, envelope: Envelope, event: DatasetCreated) -> None:
    await conn.execute(
        "INSERT INTO datasets (id, name, kind, description, created_at) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (id) DO NOTHING",
        event.dataset_id, event.name, event.kind, event.description, envelope.occurred_at,
    )


async def _insert_clip(conn: asyncpg.Connection, clip_id: str, dataset_id: str, prompt: str,
                       audio: AudioFile, created_at: Any) -> None:
    await conn.execute(
        "INSERT INTO clips (id, dataset_id, prompt, bucket, object_name, sha256, size, filename, format,"
        " duration_seconds, sample_rate, channels, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (id) DO NOTHING",
        clip_id, dataset_id, prompt, audio.bucket, audio.name, audio.sha256, audio.size, audio.filename,
        audio.format, audio.duration_seconds, audio.sample_rate, audio.channels, created_at,
    )


async def clip_added(conn: asyncpg.Connection, envelope: Envelope, event: ClipAdded) -> None:
    await _insert_clip(conn, event.clip_id, event.dataset_id, event.prompt, event.audio, envelope.occurred_at)


async def preference_pair_added(conn: asyncpg.Connection, envelope: Envelope, event: PreferencePairAdded) -> None:
    at = envelope.occurred_at
    await _insert_clip(conn, event.chosen_clip_id, event.dataset_id, event.prompt, event.chosen, at)
    await _insert_clip(conn, event.rejected_clip_id, event.dataset_id, event.prompt, event.rejected, at)
    await conn.execute(
        "INSERT INTO preference_pairs (id, dataset_id, prompt, chosen_clip_id, rejected_clip_id, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        event.pair_id, event.dataset_id, event.prompt, event.chosen_clip_id, event.rejected_clip_id, at,
    )


# A removal names its dataset too, so an event naming another dataset's clip or pair changes nothing.
async def clip_removed(conn: asyncpg.Connection, envelope: Envelope, event: ClipRemoved) -> None:
    await conn.execute(
        "UPDATE clips SET removed_at = $3 WHERE id = $1 AND dataset_id = $2 AND removed_at IS NULL",
        event.clip_id, event.dataset_id, envelope.occurred_at,
    )


async def preference_pair_removed(conn: asyncpg.Connection, envelope: Envelope, event: PreferencePairRemoved) -> None:
    # the pair's two audio files go with it, so the dataset's clip count and stored bytes drop too
    await conn.execute(
        "WITH pair AS (UPDATE preference_pairs SET removed_at = $3"
        "   WHERE id = $1 AND dataset_id = $2 AND removed_at IS NULL"
        "   RETURNING chosen_clip_id, rejected_clip_id)"
        " UPDATE clips SET removed_at = $3 FROM pair WHERE clips.id IN (pair.chosen_clip_id, pair.rejected_clip_id)",
        event.pair_id, event.dataset_id, envelope.occurred_at,
    )


# --- experiments --------------------------------------------------------------------------------
async def experiment_created(conn: asyncpg.Connection, envelope: Envelope, event: ExperimentCreated) -> None:
    await conn.execute(
        "INSERT INTO experiments (id, name, description, dataset_id, config, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6, $6) ON CONFLICT (id) DO NOTHING",
        event.experiment_id, event.name, event.description, event.dataset_id, _json(event.config),
        envelope.occurred_at,
    )


async def experiment_updated(conn: asyncpg.Connection, envelope: Envelope, event: ExperimentUpdated) -> None:
    # None means "unchanged"; `config`, when given, replaces the experiment's default config
    await conn.execute(
        "UPDATE experiments SET name = COALESCE($2, name), description = COALESCE($3, description),"
        " dataset_id = COALESCE($4, dataset_id), config = COALESCE($5::jsonb, config), updated_at = $6"
        " WHERE id = $1",
        event.experiment_id, event.name, event.description, event.dataset_id, _json(event.config),
        envelope.occurred_at,
    )


# --- runs ---------------------------------------------------------------------------------------
async def run_requested(conn: asyncpg.Connection, envelope: Envelope, event: RunRequested) -> None:
    await conn.execute(
        "INSERT INTO runs (id, experiment_id, dataset_id, name, dataset_type, status, config, requested_at)"
        " VALUES ($1, $2, $3, $4, $5, $8, $6::jsonb, $7) ON CONFLICT (id) DO NOTHING",
        event.run_id, event.experiment_id, event.dataset_id, event.name, event.config.dataset_type,
        _json(event.config.model_dump(mode="json")), envelope.occurred_at, runs.RunStatus.QUEUED,
    )


async def run_started(conn: asyncpg.Connection, envelope: Envelope, event: RunStarted) -> None:
    # a later attempt (a trainer resuming after a crash) takes over; a late start of an earlier one does not
    await conn.execute(
        "UPDATE runs SET status = $5, attempt = $2, trainer_id = $3, error = NULL,"
        " started_at = COALESCE(started_at, $4)"
        f" WHERE id = $1 AND {NOT_FINAL} AND attempt < $2",
        event.run_id, event.attempt, event.trainer_id, envelope.occurred_at, runs.RunStatus.RUNNING,
    )


async def run_attempt_failed(conn: asyncpg.Connection, envelope: Envelope, event: RunAttemptFailed) -> None:
    # shown while the run is retried; the next attempt's start clears it
    await conn.execute(
        f"UPDATE runs SET error = $2 WHERE id = $1 AND {NOT_FINAL} AND attempt <= $3",
        event.run_id, event.error, event.attempt,
    )


async def run_handed_back(conn: asyncpg.Connection, envelope: Envelope, event: RunHandedBack) -> None:
    """Nothing to show: the run stays running until the attempt that resumes it starts."""


async def dataset_exported(conn: asyncpg.Connection, envelope: Envelope, event: DatasetExported) -> None:
    await conn.execute(
        "UPDATE runs SET dataset_rows = $2, dataset_digest = $3 WHERE id = $1 AND attempt <= $4",
        event.run_id, event.rows, event.digest, event.attempt,
    )


async def loss_reported(conn: asyncpg.Connection, reports: list[tuple[Envelope, LossReported]]) -> None:
    """Upsert many reports in one statement. A step re-reported by a resumed attempt replaces the
    earlier attempt's row, so each (run, split, step) appears once; an earlier attempt's late
    report never replaces a later one's."""
    latest: dict[tuple[str, str, int], tuple[Envelope, LossReported]] = {}
    for envelope, event in reports:  # one statement cannot update a row twice: fold repeats here
        key = (event.run_id, event.split, event.step)
        if key not in latest or latest[key][1].attempt <= event.attempt:
            latest[key] = (envelope, event)
    rows = list(latest.values())
    await conn.execute(
        "INSERT INTO run_metrics (run_id, split, step, attempt, epoch, loss, learning_rate, grad_norm,"
        " metrics, reported_at)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::float8[], $6::float8[],"
        " $7::float8[], $8::float8[], $9::jsonb[], $10::timestamptz[])"
        " ON CONFLICT (run_id, split, step) DO UPDATE SET attempt = EXCLUDED.attempt, epoch = EXCLUDED.epoch,"
        " loss = EXCLUDED.loss, learning_rate = EXCLUDED.learning_rate, grad_norm = EXCLUDED.grad_norm,"
        " metrics = EXCLUDED.metrics, reported_at = EXCLUDED.reported_at"
        " WHERE run_metrics.attempt <= EXCLUDED.attempt",
        [e.run_id for _, e in rows], [e.split for _, e in rows], [e.step for _, e in rows],
        [e.attempt for _, e in rows], [e.epoch for _, e in rows], [e.loss for _, e in rows],
        [e.learning_rate for _, e in rows], [e.grad_norm for _, e in rows],
        [_json(e.metrics) for _, e in rows], [envelope.occurred_at for envelope, _ in rows],
    )
    # The curve's summary (migration 004) over the steps written, in the same transaction: one
    # step range per stretch of nearby steps, so a late report of an old step does not make the
    # summary recompute everything between it and the newest steps.
    steps: dict[tuple[str, str], list[int]] = {}
    for run_id, split, step in latest:
        steps.setdefault((run_id, split), []).append(step)
    ranges = []
    for (run_id, split), written in steps.items():
        written.sort()
        first = written[0]
        for before, step in zip(written, written[1:]):
            if step - before > SUMMARY_GAP:
                ranges.append((run_id, split, first, before))
                first = step
        ranges.append((run_id, split, first, written[-1]))
    await conn.executemany("SELECT refresh_metric_buckets($1, $2, $3, $4)", ranges)


async def run_logged(conn: asyncpg.Connection, envelope: Envelope, event: RunLogged) -> None:
    await conn.executemany(
        "INSERT INTO run_logs (run_id, attempt, chunk, line_no, line, logged_at) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT DO NOTHING",
        [(event.run_id, event.attempt, event.chunk, line_no, line, envelope.occurred_at)
         for line_no, line in enumerate(event.lines)],
    )


async def checkpoint_saved(conn: asyncpg.Connection, envelope: Envelope, event: CheckpointSaved) -> None:
    checkpoint = {"attempt": event.attempt, "step": event.step, **event.checkpoint.model_dump()}
    await conn.execute(
        "UPDATE runs SET last_checkpoint = $2::jsonb"
        " WHERE id = $1 AND (last_checkpoint IS NULL OR (last_checkpoint->>'step')::int <= $3)",
        event.run_id, _json(checkpoint), event.step,
    )


async def adapter_saved(conn: asyncpg.Connection, envelope: Envelope, event: AdapterSaved) -> None:
    ref = event.adapter
    await conn.execute(
        "INSERT INTO adapters (id, run_id, experiment_id, name, bucket, object_name, sha256, size, base_model,"
        " dataset_type, lora_config, final_loss, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13) ON CONFLICT (id) DO NOTHING",
        event.adapter_id, event.run_id, event.experiment_id, event.name, ref.bucket, ref.name, ref.sha256,
        ref.size, event.base_model, event.dataset_type, _json(event.lora_config), event.final_loss,
        envelope.occurred_at,
    )
    await conn.execute("UPDATE runs SET adapter_id = $2 WHERE id = $1", event.run_id, event.adapter_id)


async def run_completed(conn: asyncpg.Connection, envelope: Envelope, event: RunCompleted) -> None:
    await conn.execute(
        "UPDATE runs SET status = $8, attempt = GREATEST(attempt, $2), final_loss = $3,"
        " best_validation_loss = $4, steps = $5, adapter_id = $6, finished_at = $7"
        f" WHERE id = $1 AND {NOT_FINAL}",
        event.run_id, event.attempt, event.final_loss, event.best_validation_loss, event.steps,
        event.adapter_id, envelope.occurred_at, runs.RunStatus.COMPLETED,
    )


async def run_failed(conn: asyncpg.Connection, envelope: Envelope, event: RunFailed) -> None:
    await conn.execute(
        "UPDATE runs SET status = $5, attempt = GREATEST(attempt, $2), error = $3, finished_at = $4"
        f" WHERE id = $1 AND {NOT_FINAL}",
        event.run_id, event.attempt, event.error, envelope.occurred_at, runs.RunStatus.FAILED,
    )


async def run_cancel_requested(conn: asyncpg.Connection, envelope: Envelope, event: RunCancelRequested) -> None:
    # the run stays queued or running until RunCancelled says it stopped
    await conn.execute(f"UPDATE runs SET cancel_requested = true WHERE id = $1 AND {NOT_FINAL}", event.run_id)


async def run_cancelled(conn: asyncpg.Connection, envelope: Envelope, event: RunCancelled) -> None:
    await conn.execute(
        "UPDATE runs SET status = $4, attempt = GREATEST(attempt, $2), finished_at = $3"
        f" WHERE id = $1 AND {NOT_FINAL}",
        event.run_id, event.attempt, envelope.occurred_at, runs.RunStatus.CANCELLED,
    )


Handler = Callable[[asyncpg.Connection, Envelope, Any], Awaitable[None]]

HANDLERS: dict[type[Event], Handler] = {
    DatasetCreated: dataset_created,
    ClipAdded: clip_added,
    PreferencePairAdded: preference_pair_added,
    ClipRemoved: clip_removed,
    PreferencePairRemoved: preference_pair_removed,
    ExperimentCreated: experiment_created,
    ExperimentUpdated: experiment_updated,
    RunRequested: run_requested,
    RunStarted: run_started,
    DatasetExported: dataset_exported,
    RunLogged: run_logged,
    CheckpointSaved: checkpoint_saved,
    AdapterSaved: adapter_saved,
    RunCompleted: run_completed,
    RunFailed: run_failed,
    RunAttemptFailed: run_attempt_failed,
    RunHandedBack: run_handed_back,
    RunCancelRequested: run_cancel_requested,
    RunCancelled: run_cancelled,
    **STUDIO_HANDLERS,
}


async def apply(conn: asyncpg.Connection, envelope: Envelope, event: Event) -> None:
    """Fold one event (LossReported included; the projector batches those through `loss_reported`)."""
    if isinstance(event, LossReported):
        await loss_reported(conn, [(envelope, event)])
    else:
        await HANDLERS[type(event)](conn, envelope, event)
