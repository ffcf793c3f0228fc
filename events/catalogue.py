"""Every event Cadenza publishes. Names are fixed by the design; fields are ours.

Subjects are `<root>.<aggregate>.<id>.<event_name>`, e.g. `cadenza.run.<run_id>.loss_reported`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from events.base import AudioFile, Event, ObjectRef
from model.training.config import TrainingConfig

DatasetKind = Literal["supervised", "preference"]


# --- datasets -----------------------------------------------------------------------------------
class DatasetCreated(Event):
    aggregate = "dataset"
    dataset_id: str
    name: str
    kind: DatasetKind
    description: str = ""


class ClipAdded(Event):
    aggregate = "dataset"
    key_fields = ("clip_id",)
    dataset_id: str
    clip_id: str
    prompt: str
    audio: AudioFile


class PreferencePairAdded(Event):
    aggregate = "dataset"
    key_fields = ("pair_id",)
    dataset_id: str
    pair_id: str
    prompt: str
    chosen_clip_id: str
    chosen: AudioFile
    rejected_clip_id: str
    rejected: AudioFile


class ClipRemoved(Event):
    """The clip leaves the dataset: runs requested from now on train without it; runs requested
    before it still train on it (the trainer folds the history up to the run request)."""

    aggregate = "dataset"
    key_fields = ("clip_id",)
    dataset_id: str
    clip_id: str


class PreferencePairRemoved(Event):
    """The pair (and its two audio files) leaves the dataset, as `ClipRemoved` does for a clip."""

    aggregate = "dataset"
    key_fields = ("pair_id",)
    dataset_id: str
    pair_id: str


# --- experiments --------------------------------------------------------------------------------
class ExperimentCreated(Event):
    aggregate = "experiment"
    experiment_id: str
    name: str
    dataset_id: str
    description: str = ""
    config: dict[str, Any] = Field(description="Default training config overrides for its runs")


class ExperimentUpdated(Event):
    """Only the fields that are not None changed."""

    aggregate = "experiment"
    key_fields = ("update_id",)
    experiment_id: str
    update_id: str
    name: str | None = None
    description: str | None = None
    dataset_id: str | None = None
    config: dict[str, Any] | None = None


# --- runs ---------------------------------------------------------------------------------------
class RunRequested(Event):
    """Version 2: `config` is a full, validated `TrainingConfig` (v1 carried `epochs` and only some fields)."""

    aggregate = "run"
    version = 2
    run_id: str
    experiment_id: str
    dataset_id: str
    name: str
    config: TrainingConfig


class RunStarted(Event):
    aggregate = "run"
    key_fields = ("attempt",)
    run_id: str
    attempt: int = Field(ge=1)
    trainer_id: str


class DatasetExported(Event):
    """The attempt's training process read the run's dataset: its rows and content digest (prompts and
    audio hashes), the digest its checkpoints and adapter carry."""

    aggregate = "run"
    key_fields = ("attempt",)
    run_id: str
    attempt: int = Field(ge=1)
    rows: int = Field(ge=0)
    digest: str


class LossReported(Event):
    """One logged training step (split "train") or one validation pass (split "validation")."""

    aggregate = "run"
    key_fields = ("split", "step", "attempt")
    run_id: str
    attempt: int = Field(ge=1)
    split: Literal["train", "validation"] = "train"
    step: int = Field(ge=0)
    epoch: float = Field(ge=0)
    loss: float
    learning_rate: float | None = None
    grad_norm: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


class RunLogged(Event):
    """Lines the training process wrote to stderr, in order (`chunk` counts from 0 per attempt)."""

    aggregate = "run"
    key_fields = ("attempt", "chunk")
    run_id: str
    attempt: int = Field(ge=1)
    chunk: int = Field(ge=0)
    lines: list[str]


class CheckpointSaved(Event):
    aggregate = "run"
    key_fields = ("step",)
    run_id: str
    attempt: int = Field(ge=1)
    step: int = Field(ge=0)
    checkpoint: ObjectRef


class AdapterSaved(Event):
    aggregate = "run"
    run_id: str
    adapter_id: str
    experiment_id: str
    name: str = Field(description="`<experiment name>-<run name>`")
    adapter: ObjectRef
    base_model: str
    dataset_type: DatasetKind
    lora_config: dict[str, Any]
    final_loss: float | None


class RunCompleted(Event):
    aggregate = "run"
    run_id: str
    attempt: int = Field(ge=1)
    final_loss: float | None
    best_validation_loss: float | None = None
    steps: int = Field(ge=0)
    seconds: float = Field(ge=0)
    adapter_id: str


class RunFailed(Event):
    aggregate = "run"
    run_id: str
    attempt: int = Field(ge=0, description="0 when the run failed before any attempt started")
    error: str


class RunAttemptFailed(Event):
    """An attempt failed in the trainer (not in training); the request is delivered again, up to the
    trainer's attempt limit, and the run fails with this error once no attempt is left."""

    aggregate = "run"
    key_fields = ("attempt",)
    run_id: str
    attempt: int = Field(ge=1)
    error: str


class RunHandedBack(Event):
    """A stopping trainer checkpointed the attempt and handed the run back to the queue: another
    trainer resumes it, and the attempt does not count against the trainer's attempt limit."""

    aggregate = "run"
    key_fields = ("attempt",)
    run_id: str
    attempt: int = Field(ge=1)


class RunCancelRequested(Event):
    aggregate = "run"
    run_id: str


class RunCancelled(Event):
    aggregate = "run"
    run_id: str
    attempt: int = Field(ge=0)
    reason: str = "cancelled by user"


# --- generations --------------------------------------------------------------------------------
class GenerationRequested(Event):
    """Work for a generation worker. `adapter_id` null means the base model alone; `adapter` is the
    adapter's weights, so a worker needs nothing but the stream and the object store."""

    aggregate = "generation"
    generation_id: str
    prompt: str
    adapter_id: str | None
    adapter: ObjectRef | None = None
    base_model: str
    duration_seconds: float = Field(gt=0)
    seed: int = Field(ge=0)
    num_samples: int = Field(ge=1, le=8)
    guidance_scale: float
    temperature: float
    top_k: int = Field(ge=0)
    top_p: float
    comparison_id: str | None = None


class GenerationStarted(Event):
    aggregate = "generation"
    key_fields = ("attempt",)
    generation_id: str
    attempt: int = Field(ge=1)
    worker_id: str


class GenerationProgressed(Event):
    aggregate = "generation"
    key_fields = ("attempt", "steps_done")
    generation_id: str
    attempt: int = Field(ge=1)
    steps_done: int = Field(ge=0)
    steps_total: int = Field(ge=1)


class SampleGenerated(Event):
    """One sample of a request: `sample_id` is `events.generations.sample_id(generation_id, index)`,
    so a request generated again after a redelivery names its samples the same."""

    aggregate = "generation"
    key_fields = ("index",)
    generation_id: str
    sample_id: str
    index: int = Field(ge=0)
    audio: AudioFile
    seed: int = Field(ge=0)
    seconds_taken: float = Field(ge=0)


class GenerationCompleted(Event):
    aggregate = "generation"
    generation_id: str
    attempt: int = Field(ge=1)
    seconds_taken: float = Field(ge=0)


class GenerationFailed(Event):
    aggregate = "generation"
    generation_id: str
    attempt: int = Field(ge=0, description="0 when it failed before any attempt started")
    error: str


class GenerationHandedBack(Event):
    """A stopping worker interrupted the attempt and handed the generation back to the queue:
    another worker generates it, and the attempt does not count against the attempt limit."""

    aggregate = "generation"
    key_fields = ("attempt",)
    generation_id: str
    attempt: int = Field(ge=1)


class GenerationCancelRequested(Event):
    aggregate = "generation"
    generation_id: str


class GenerationCancelled(Event):
    aggregate = "generation"
    generation_id: str
    attempt: int = Field(ge=0)
    reason: str = "cancelled by user"


# --- feedback on samples ------------------------------------------------------------------------
RatingCriterion = Literal["overall", "melody", "rhythm", "sound_quality", "prompt_match"]


class SampleRated(Event):
    """A later rating of the same criterion replaces the earlier one; the history keeps both."""

    aggregate = "sample"
    key_fields = ("rating_id",)
    sample_id: str
    rating_id: str
    criterion: RatingCriterion
    rating: int = Field(ge=1, le=5)


class SampleTagged(Event):
    aggregate = "sample"
    key_fields = ("change_id",)
    sample_id: str
    change_id: str
    tag: str


class SampleUntagged(Event):
    aggregate = "sample"
    key_fields = ("change_id",)
    sample_id: str
    change_id: str
    tag: str


class SampleFavorited(Event):
    aggregate = "sample"
    key_fields = ("change_id",)
    sample_id: str
    change_id: str


class SampleUnfavorited(Event):
    aggregate = "sample"
    key_fields = ("change_id",)
    sample_id: str
    change_id: str


class PreferenceRecorded(Event):
    """A free preference between two samples (of any prompts)."""

    aggregate = "preference"
    preference_id: str
    chosen_sample_id: str
    rejected_sample_id: str


# --- comparisons --------------------------------------------------------------------------------
Side = Literal["a", "b"]
Choice = Literal["first", "second", "equal"]
Outcome = Literal["a", "b", "tie"]


class ComparisonSide(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter_id: str | None = Field(description="null: the base model")


class ComparisonGeneration(BaseModel):
    """The generation request made for one side on one prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generation_id: str
    side: Side
    prompt_index: int = Field(ge=0)
    seed: int = Field(ge=0)


class ComparisonPair(BaseModel):
    """Sample `sample_index` of both sides on one prompt, shown blind: `first` is the side shown first,
    drawn at random when the comparison was created."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pair_id: str
    prompt_index: int = Field(ge=0)
    sample_index: int = Field(ge=0)
    first: Side


class ComparisonCreated(Event):
    aggregate = "comparison"
    comparison_id: str
    name: str
    a: ComparisonSide
    b: ComparisonSide
    prompts: list[str] = Field(min_length=1)
    samples_per_prompt: int = Field(ge=1, le=8)
    seed: int = Field(ge=0)
    generations: list[ComparisonGeneration]
    pairs: list[ComparisonPair]


class ComparisonVoted(Event):
    """`choice` as the voter saw it; `outcome` the side it means, through the pair's recorded order."""

    aggregate = "comparison"
    key_fields = ("pair_id",)
    comparison_id: str
    pair_id: str
    choice: Choice
    outcome: Outcome


# --- datasets drawn from feedback ---------------------------------------------------------------
class FeedbackFilter(BaseModel):
    """Which feedback a dataset is drawn from; a field left null does not filter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter_id: str | None = None
    min_rating: int | None = Field(None, ge=1, le=5)
    max_rating: int | None = Field(None, ge=1, le=5)
    tags: list[str] = Field(default_factory=list)
    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    comparison_ids: list[str] = Field(default_factory=list)
    include_free_pairs: bool = False


class DrawnClip(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    clip_id: str
    sample_id: str


class DrawnPair(BaseModel):
    """A preference pair taken from a comparison vote (`comparison_id`, `comparison_pair_id`) or from
    a free preference (`preference_id`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pair_id: str
    chosen_sample_id: str
    rejected_sample_id: str
    comparison_id: str | None = None
    comparison_pair_id: str | None = None
    preference_id: str | None = None


class DatasetDrawnFromFeedback(Event):
    """The dataset's filter and exactly what it took, published right after DatasetCreated and
    before the ClipAdded / PreferencePairAdded events that hold the items (their audio is the
    samples' objects), so later feedback never changes it."""

    aggregate = "dataset"
    dataset_id: str
    filter: FeedbackFilter
    clips: list[DrawnClip] = Field(default_factory=list)
    pairs: list[DrawnPair] = Field(default_factory=list)


CATALOGUE: dict[str, type[Event]] = {
    cls.event_type(): cls
    for cls in (
        DatasetCreated, ClipAdded, PreferencePairAdded, ClipRemoved, PreferencePairRemoved,
        ExperimentCreated, ExperimentUpdated,
        RunRequested, RunStarted, DatasetExported, LossReported, RunLogged, CheckpointSaved,
        AdapterSaved, RunCompleted, RunFailed, RunAttemptFailed, RunHandedBack, RunCancelRequested, RunCancelled,
        GenerationRequested, GenerationStarted, GenerationProgressed, SampleGenerated, GenerationCompleted,
        GenerationFailed, GenerationHandedBack, GenerationCancelRequested, GenerationCancelled,
        SampleRated, SampleTagged, SampleUntagged, SampleFavorited, SampleUnfavorited, PreferenceRecorded,
        ComparisonCreated, ComparisonVoted,
        DatasetDrawnFromFeedback,
    )
}
