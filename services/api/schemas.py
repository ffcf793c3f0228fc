"""Request and response bodies of the public HTTP contract: clients depend on these names."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from events.catalogue import DatasetKind
from events.runs import FINISHED, RunState, RunStatus
from services.api.validation import JsonObject, Name, Text
from services.api.studio_schemas import FeedbackFilterBody


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests -----------------------------------------------------------------------------------
class DatasetCreate(Body):
    name: Name
    kind: DatasetKind
    description: Text = ""
    from_feedback: FeedbackFilterBody | None = Field(
        None, description="Draw the dataset's items from feedback with this filter (a snapshot taken now)")


class ExperimentCreate(Body):
    name: Name
    dataset_id: Text
    description: Text = ""
    config: JsonObject = Field(
        default_factory=dict,
        description="Default training config of its runs: any TrainingConfig fields (`epochs` is read as "
        "`num_epochs`); `dataset_type` always comes from the dataset's kind.",
    )


class ExperimentPatch(Body):
    """Fields left out (or null) stay as they are; `config` replaces the whole default config."""

    name: Name | None = None
    description: Text | None = None
    dataset_id: Text | None = None
    config: JsonObject | None = None


class RunCreate(Body):
    name: Name | None = Field(None, description="Default: `run-<n>`, n counting the experiment's runs")
    config: JsonObject = Field(default_factory=dict, description="Overrides merged over the experiment's config")


# --- responses ----------------------------------------------------------------------------------
class Clip(BaseModel):
    id: str
    dataset_id: str
    prompt: str
    filename: str
    format: str
    duration_seconds: float
    sample_rate: int
    channels: int
    bucket: str
    object_name: str
    sha256: str
    size: int
    audio_url: str
    created_at: datetime


class Pair(BaseModel):
    id: str
    dataset_id: str
    prompt: str
    chosen: Clip
    rejected: Clip
    created_at: datetime


class Dataset(BaseModel):
    id: str
    name: str
    kind: DatasetKind
    description: str
    clip_count: int = Field(description="Audio files stored in it (a pair holds two)")
    pair_count: int
    created_at: datetime


class DatasetDetail(Dataset):
    clips: list[Clip] = Field(description="Supervised clips (empty for a preference dataset)")
    pairs: list[Pair] = Field(description="Preference pairs (empty for a supervised dataset)")


class Run(BaseModel):
    id: str
    experiment_id: str
    dataset_id: str
    name: str
    dataset_type: DatasetKind
    status: RunStatus
    cancel_requested: bool
    attempt: int
    trainer_id: str | None
    config: dict[str, Any] = Field(description="The full, validated TrainingConfig the run trains with")
    dataset_rows: int | None
    dataset_digest: str | None
    final_loss: float | None
    best_validation_loss: float | None
    steps: int | None
    error: str | None
    adapter_id: str | None
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @computed_field(description="Whether the status is final: nothing changes it any more")  # type: ignore[prop-decorator]
    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class RunSummary(BaseModel):
    id: str
    name: str
    dataset_type: str
    status: RunStatus
    attempt: int
    final_loss: float | None
    adapter_id: str | None
    requested_at: datetime
    finished_at: datetime | None

    @computed_field(description="Whether the status is final: nothing changes it any more")  # type: ignore[prop-decorator]
    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class BestRuns(BaseModel):
    """Per training type, the completed run with the lowest final loss (null until one completed).
    Supervised and DPO losses measure different things, so they are never compared."""

    supervised: RunSummary | None = None
    preference: RunSummary | None = None


class Experiment(BaseModel):
    id: str
    name: str
    description: str
    dataset_id: str
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    runs: list[RunSummary]
    best_runs: BestRuns


class Metric(BaseModel):
    split: str
    step: int
    attempt: int
    epoch: float
    loss: float
    learning_rate: float | None
    grad_norm: float | None
    metrics: dict[str, float]
    reported_at: datetime


class LogLine(BaseModel):
    attempt: int
    chunk: int
    line_no: int
    line: str
    logged_at: datetime


class RunEvent(BaseModel):
    """One event of a run's history as stored on the stream (upcast to the current version)."""

    seq: int
    type: str
    version: int
    occurred_at: datetime
    payload: dict[str, Any]
    run: RunState = Field(description="The run's state once this event happened (its history folded up to here)")


class Adapter(BaseModel):
    id: str
    run_id: str
    experiment_id: str
    name: str
    bucket: str
    object_name: str
    sha256: str
    size: int
    base_model: str
    dataset_type: DatasetKind
    lora_config: dict[str, Any]
    final_loss: float | None
    download_url: str
    created_at: datetime
