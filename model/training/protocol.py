"""The training CLI's contract with whoever runs it: the JSON lines it prints on stdout (one object
per line, its kind in `type`) and its exit codes. The CLI writes these models and the trainer
service reads them, so both sides share one definition; model/README.md describes each field.

Only pydantic and the standard library are imported here (and the torch-free TrainingConfig), so
the trainer service reads the lines without loading torch.
"""

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from model.training.config import TrainingConfig

EXIT_OK = 0
EXIT_FAILED = 1  # training failed: a `failed` line, traceback on stderr
EXIT_BAD_INPUT = 2  # dataset row, audio file, configuration, base model or checkpoint: a `failed` line
EXIT_STOPPED = 3  # SIGTERM/SIGINT: a checkpoint was saved; resume with --resume


class StartedLine(BaseModel):
    """Inputs checked, model loaded, dataset encoded: the steps start."""

    type: Literal["started"] = "started"
    name: str
    config: TrainingConfig
    device: str
    precision: Literal["fp32", "bf16"]  # resolved from the config's `auto`
    dataset: Path
    dataset_digest: str  # prompts and audio content, not paths: a resume checks it
    rows: int
    train_examples: int
    validation_examples: int
    total_steps: int
    start_step: int
    resumed_from: Path | None
    trainable_parameters: int


class StepLine(BaseModel):
    """One optimizer step. A preference run adds its DPO rewards (`rewards/chosen`, …) as further
    number fields: their names are not identifiers, so they are extra fields rather than declared."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, float]

    type: Literal["step"] = "step"
    step: int  # optimizer steps done, from 1
    epoch: int  # from 1
    loss: float
    learning_rate: float  # the one this step used
    grad_norm: float  # before clipping

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.__pydantic_extra__)


class ValidationLine(BaseModel):
    type: Literal["validation"] = "validation"
    step: int
    loss: float
    best_loss: float


class CheckpointLine(BaseModel):
    """A complete checkpoint folder (written aside and renamed into place)."""

    type: Literal["checkpoint"] = "checkpoint"
    step: int
    path: Path


class AdapterLine(BaseModel):
    type: Literal["adapter"] = "adapter"
    path: Path
    sha256: str  # of adapter_model.safetensors


class CompletedLine(BaseModel):
    type: Literal["completed"] = "completed"
    final_loss: float | None  # the last step's
    best_validation_loss: float | None  # None without validation
    steps: int
    seconds: float
    adapter: Path


class FailedLine(BaseModel):
    type: Literal["failed"] = "failed"
    error: str  # names the file and line, or the field and reason
    exit_code: int


Line = Annotated[
    StartedLine | StepLine | ValidationLine | CheckpointLine | AdapterLine | CompletedLine | FailedLine,
    Field(discriminator="type"),
]
_LINE = TypeAdapter(Line)


def write_line(line: Line) -> str:
    """`line` as the one JSON object (no newline) the CLI prints for it."""
    return json.dumps(line.model_dump(mode="json"))


def read_line(text: str) -> Line:
    """One stdout line of the CLI; pydantic.ValidationError if it is not one of the protocol's."""
    return _LINE.validate_json(text)
