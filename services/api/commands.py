"""Commands: validate, publish the event(s), wait until the registry has applied them, read back.

Nothing is written anywhere but the stream (and the object store, whose objects are named by their
sha256, so a failed publish leaves at most an unreferenced blob): a refused command leaves no record.
"""
from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from events import runs
from events.base import AudioFile, Event
from events.catalogue import (
    ClipAdded, ClipRemoved, DatasetCreated, ExperimentCreated, ExperimentUpdated, PreferencePairAdded,
    PreferencePairRemoved, RunCancelRequested, RunRequested,
)
from events.codec import decode
from model.audio import MIN_WINDOW_SECONDS
from model.training.config import TrainingConfig, with_num_epochs
from services.api import queries
from services.api.audio import AudioInfo, AudioLimits, AudioOverLimit, UndecodableAudio, inspect_audio
from services.api.context import Context
from services.api.errors import Conflict, NotFound, QuotaExceeded, invalid, invalid_from
from services.api.schemas import (
    Clip, Dataset, DatasetCreate, Experiment, ExperimentCreate, ExperimentPatch, Pair, Run, RunCreate,
)
from services.api.validation import storable_text
from services.model_dirs import base_model_refusal
from services.registry import wait_until_projected

@dataclass(frozen=True)
class Upload:
    """One uploaded file, read whole (the app's body limit bounds its size)."""

    field: str
    filename: str
    data: bytes


async def publish(ctx: Context, *events: Event) -> None:
    """Publish in order and return once the read models include the last of them. A command
    retried with its Idempotency-Key finds its events stored already (see `ResourceIds`), also
    after the stream's duplicate window, and publishes nothing again.

    Only the last message on the last event's subject is looked at (`Bus.stored_seq`), as reading
    a subject whole would make every keyed upload to a large dataset read all its clips. A retry
    whose event is no longer the last on its subject (another clip added since) publishes again:
    JetStream drops it within its duplicate window, and after it the projector folds the copy
    without a change, its ids being the first's; the answer is the first resource either way."""
    stored = await ctx.bus.stored_seq(events[-1]) if ctx.ids.keyed else None
    sequences = [stored] if stored is not None else await ctx.bus.publish_many(list(events), ctx.ids.request)
    await wait_until_projected(ctx.pool, max(sequences), ctx.settings.projection_timeout)


async def published_before(ctx: Context, event: Event) -> bool:
    """Whether this request, sent with an Idempotency-Key, published `event` already: a retry
    whose first try was applied, to be answered as that one was rather than refused as a repeat.
    Once it is, the read models include it. A 422 if the key's first request on this path
    published something else (another body)."""
    if not ctx.ids.keyed:
        return False
    stored = await ctx.bus.request_message(event.subject(ctx.bus.subject_root), ctx.ids.request)
    if stored is None:
        return False
    _, first = decode(stored.data, stored.subject)
    if first != event:
        raise invalid(("header", "Idempotency-Key"), "was sent before with another request to this path: use a new "
                      "key for a new request", "idempotency_key_reused")
    await wait_until_projected(ctx.pool, stored.seq, ctx.settings.projection_timeout)
    return True


# --- datasets -----------------------------------------------------------------------------------
async def create_dataset(ctx: Context, body: DatasetCreate) -> Dataset:
    dataset_id = ctx.ids.new()
    await publish(ctx, DatasetCreated(dataset_id=dataset_id, name=body.name, kind=body.kind, description=body.description))
    return await queries.dataset(ctx.pool, dataset_id)


async def add_clip(ctx: Context, dataset_id: str, prompt: str, upload: Upload) -> Clip:
    await require_kind(ctx, dataset_id, "supervised", "clips", "pairs")
    await require_room(ctx, dataset_id, upload)
    audio = await store_audio(ctx, upload, await inspect_upload(ctx, upload))
    clip_id = ctx.ids.new()
    await publish(ctx, ClipAdded(dataset_id=dataset_id, clip_id=clip_id, prompt=prompt, audio=audio))
    return await queries.clip(ctx.pool, clip_id)


async def add_pair(ctx: Context, dataset_id: str, prompt: str, chosen: Upload, rejected: Upload) -> Pair:
    await require_kind(ctx, dataset_id, "preference", "pairs", "clips")
    await require_room(ctx, dataset_id, chosen, rejected)
    # Both files are checked before either is stored.
    chosen_info, rejected_info = await inspect_upload(ctx, chosen), await inspect_upload(ctx, rejected)
    pair = PreferencePairAdded(
        dataset_id=dataset_id,
        pair_id=ctx.ids.new(),
        prompt=prompt,
        chosen_clip_id=ctx.ids.new(),
        chosen=await store_audio(ctx, chosen, chosen_info),
        rejected_clip_id=ctx.ids.new(),
        rejected=await store_audio(ctx, rejected, rejected_info),
    )
    await publish(ctx, pair)
    [stored] = await queries.pairs_of(ctx.pool, dataset_id, pair.pair_id)
    return stored


async def remove_clip(ctx: Context, dataset_id: str, clip_id: str) -> None:
    """A 404 for a clip the dataset does not hold (any more). A pair's audio is removed with its pair
    (`remove_pair`), so a preference dataset refuses this with a 409."""
    await require_kind(ctx, dataset_id, "supervised", "clips", "pairs")
    await remove(ctx, "clips", "clip", ClipRemoved(dataset_id=dataset_id, clip_id=clip_id), clip_id)


async def remove_pair(ctx: Context, dataset_id: str, pair_id: str) -> None:
    await require_kind(ctx, dataset_id, "preference", "pairs", "clips")
    await remove(ctx, "preference_pairs", "pair", PreferencePairRemoved(dataset_id=dataset_id, pair_id=pair_id),
                 pair_id)


async def remove(ctx: Context, table: str, kind: str, removal: ClipRemoved | PreferencePairRemoved,
                 item_id: str) -> None:
    """Publish `removal` of the item, or a 404 if the dataset does not hold it, unless this keyed
    request removed it before. That is looked for only once refused: a dataset's removals share one
    subject, which a keyed removal would otherwise read whole each time."""
    # `table` is one of our two table names, never input
    present = await ctx.pool.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1 AND dataset_id = $2 AND removed_at IS NULL)",
        item_id, removal.dataset_id,
    )
    if present:
        await publish(ctx, removal)
    elif not await published_before(ctx, removal):
        raise NotFound(kind, item_id)


async def require_kind(ctx: Context, dataset_id: str, kind: str, adding: str, instead: str) -> None:
    dataset = await queries.dataset(ctx.pool, dataset_id)
    if dataset.kind != kind:
        raise Conflict(
            f"dataset '{dataset_id}' is a {dataset.kind} dataset: it takes {instead}, not {adding} "
            f"(POST /api/datasets/{dataset_id}/{instead})"
        )


async def require_room(ctx: Context, dataset_id: str, *uploads: Upload) -> None:
    """The dataset's quotas (clip count and stored bytes) hold with `uploads` added, or a 413/422.
    Checked against the read model before publishing, so uploads racing each other may pass a
    quota by the few files in flight; the next upload is refused."""
    row = await ctx.pool.fetchrow(
        "SELECT count(*) AS clips, coalesce(sum(size), 0) AS bytes FROM clips WHERE dataset_id = $1 AND removed_at IS NULL",
        dataset_id,
    )
    limit = ctx.settings
    if row["clips"] + len(uploads) > limit.max_dataset_clips:
        raise invalid(
            ("body", uploads[0].field),
            f"dataset '{dataset_id}' holds {row['clips']} clips; the quota is {limit.max_dataset_clips} "
            f"(CADENZA_MAX_DATASET_CLIPS)",
            "dataset_clip_quota",
        )
    adding = sum(len(upload.data) for upload in uploads)
    if row["bytes"] + adding > limit.max_dataset_bytes:
        raise QuotaExceeded(
            f"dataset '{dataset_id}' holds {row['bytes']} bytes of audio; adding {adding} would pass its quota of "
            f"{limit.max_dataset_bytes} bytes (CADENZA_MAX_DATASET_BYTES)"
        )


async def inspect_upload(ctx: Context, upload: Upload) -> AudioInfo:
    """What the uploaded file is; a 422 on its field if it cannot be trained on or passes a limit.
    The file name is only ever stored and shown, never used as a path."""
    try:
        storable_text(upload.filename)
    except ValueError as error:
        raise invalid(("body", upload.field), f"the file name {error}", "filename_unstorable") from None
    limits = AudioLimits(
        max_seconds=ctx.settings.max_audio_seconds,
        max_channels=ctx.settings.max_audio_channels,
        max_expansion=ctx.settings.max_audio_expansion,
    )
    try:
        # Decoding takes seconds for long files: in a thread, so the event loop keeps serving.
        info = await asyncio.to_thread(inspect_audio, upload.data, limits)
    except UndecodableAudio as error:
        raise invalid(("body", upload.field), f"{upload.filename}: {error}", "audio_undecodable") from error
    except AudioOverLimit as error:
        raise invalid(("body", upload.field), f"{upload.filename}: {error}", "audio_over_limit") from error
    if info.duration_seconds < MIN_WINDOW_SECONDS:
        raise invalid(
            ("body", upload.field),
            f"{upload.filename}: the audio is {info.duration_seconds:.3f} s long; training needs at least "
            f"{MIN_WINDOW_SECONDS:g} s",
            "audio_too_short",
        )
    return info


async def store_audio(ctx: Context, upload: Upload, info: AudioInfo) -> AudioFile:
    # Named by content: storing the same bytes twice, or retrying, writes the same object.
    name = f"{hashlib.sha256(upload.data).hexdigest()}.{info.extension}"
    ref = await ctx.bus.put_object(ctx.bus.clips_bucket, name, upload.data)
    return AudioFile(
        **ref.model_dump(),
        filename=upload.filename,
        format=info.format,
        duration_seconds=info.duration_seconds,
        sample_rate=info.sample_rate,
        channels=info.channels,
    )


# --- experiments --------------------------------------------------------------------------------
def training_config(config: dict[str, Any], dataset_kind: str, model_dirs: Sequence[Path]) -> TrainingConfig:
    """The full TrainingConfig for `config` on a dataset of `dataset_kind`, or a 422 naming the field
    (a `base_model` outside `model_dirs` too)."""
    if config.get("dataset_type", dataset_kind) != dataset_kind:
        raise invalid(
            ("body", "config", "dataset_type"),
            f"comes from the dataset's kind ('{dataset_kind}'); leave it out",
        )
    try:
        validated = TrainingConfig.model_validate(config | {"dataset_type": dataset_kind})
    except ValidationError as error:
        raise invalid_from(error, ("body", "config")) from error
    if refusal := base_model_refusal(validated.base_model, model_dirs):
        raise invalid(("body", "config", "base_model"), refusal, "base_model_not_allowed")
    return validated


async def create_experiment(ctx: Context, body: ExperimentCreate) -> Experiment:
    dataset = await queries.dataset(ctx.pool, body.dataset_id)
    config = with_num_epochs(body.config)
    training_config(config, dataset.kind, ctx.settings.model_dirs)
    experiment_id = ctx.ids.new()
    await publish(
        ctx,
        ExperimentCreated(
            experiment_id=experiment_id,
            name=body.name,
            dataset_id=body.dataset_id,
            description=body.description,
            config=config,
        ),
    )
    return await queries.experiment(ctx.pool, experiment_id)


async def update_experiment(ctx: Context, experiment_id: str, patch: ExperimentPatch) -> Experiment:
    current = await queries.experiment(ctx.pool, experiment_id)
    changes = patch.model_dump(exclude_none=True)
    if not changes:
        return current
    dataset = await queries.dataset(ctx.pool, changes.get("dataset_id", current.dataset_id))
    if "config" in changes:
        changes["config"] = with_num_epochs(changes["config"])
    # The default config must stay valid for the (possibly new) dataset.
    training_config(changes.get("config", current.config), dataset.kind, ctx.settings.model_dirs)
    await publish(ctx, ExperimentUpdated(experiment_id=experiment_id, update_id=ctx.ids.new(), **changes))
    return await queries.experiment(ctx.pool, experiment_id)


# --- runs ---------------------------------------------------------------------------------------
async def request_run(ctx: Context, experiment_id: str, body: RunCreate) -> Run:
    experiment = await queries.experiment(ctx.pool, experiment_id)
    dataset = await queries.dataset(ctx.pool, experiment.dataset_id)
    config = training_config(with_num_epochs(experiment.config) | with_num_epochs(body.config), dataset.kind,
                             ctx.settings.model_dirs)
    examples = dataset.clip_count if dataset.kind == "supervised" else dataset.pair_count
    if examples == 0:
        items = "clips" if dataset.kind == "supervised" else "pairs"
        raise invalid(
            ("body",),
            f"dataset '{dataset.id}' of experiment '{experiment_id}' has no {items} yet: add some first",
            "dataset_empty",
        )
    run_id = ctx.ids.new()
    await publish(
        ctx,
        RunRequested(
            run_id=run_id,
            experiment_id=experiment_id,
            dataset_id=dataset.id,
            name=body.name or f"run-{len(experiment.runs) + 1}",
            config=config,
        ),
    )
    return await queries.run(ctx.pool, run_id)


async def cancel_run(ctx: Context, run_id: str) -> Run:
    """A queued run is cancelled at once (it will never be trained); a running one is asked to stop,
    and its trainer publishes RunCancelled once the process has stopped."""
    run = await queries.run(ctx.pool, run_id)
    if not await published_before(ctx, RunCancelRequested(run_id=run_id)):
        try:
            events = runs.cancel(run_id, run.status)
        except runs.RunAlreadyFinished as error:
            raise Conflict(str(error)) from error
        await publish(ctx, *events)
    return await queries.run(ctx.pool, run_id)
