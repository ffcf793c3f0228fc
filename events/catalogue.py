"""Every event Cadenza publishes. Names are fixed by the design; fields are ours.

Subjects are `<root>.<aggregate>.<id>.<event_name>`, e.g. `cadenza.run.<run_id>.loss_reported`.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

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


class RunCancelRequested(Event):
    aggregate = "run"
    run_id: str


class RunCancelled(Event):
    aggregate = "run"
    run_id: str
    attempt: int = Field(ge=0)
    reason: str = "cancelled by user"


CATALOGUE: dict[str, type[Event]] = {
    cls.event_type(): cls
    for cls in (
        DatasetCreated, ClipAdded, PreferencePairAdded,
        ExperimentCreated, ExperimentUpdated,
        RunRequested, RunStarted, DatasetExported, LossReported, RunLogged, CheckpointSaved,
        AdapterSaved, RunCompleted, RunFailed, RunAttemptFailed, RunCancelRequested, RunCancelled,
    )
}
