"""The model CLI's JSON-lines progress, read into typed records (pure: no I/O).

The CLI prints one JSON object per line on stdout with a `type`: started, step, validation,
checkpoint, adapter, completed, failed. Step and validation lines become `LossReported` events with
every numeric field they carry; the others steer the run (upload a checkpoint, register the adapter,
complete or fail it).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from events.catalogue import LossReported

# Fields of a step/validation line that LossReported carries as its own fields, not in `metrics`.
_OWN_FIELDS = {"type", "step", "epoch", "loss", "learning_rate", "grad_norm"}


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


@dataclass(frozen=True)
class Adapter:
    path: Path
    sha256: str | None


@dataclass(frozen=True)
class Completed:
    final_loss: float | None
    best_validation_loss: float | None
    steps: int
    seconds: float


@dataclass(frozen=True)
class Failed:
    error: str


@dataclass(frozen=True)
class Other:
    """A line that is not progress the trainer acts on (e.g. `started`, or stray output)."""

    text: str


Progress = LossReported | Checkpoint | Adapter | Completed | Failed | Other


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _loss(line: dict[str, Any], run_id: str, attempt: int, split: Literal["train", "validation"]) -> LossReported | None:
    loss = _number(line.get("loss"))
    if loss is None:  # a diverged (NaN) loss has no place in LossReported; the line goes to the logs
        return None
    metrics = {}
    for key, value in line.items():
        number = _number(value)
        if key not in _OWN_FIELDS and number is not None:
            metrics[key] = number
    return LossReported(
        run_id=run_id,
        attempt=attempt,
        split=split,
        step=int(line["step"]),
        epoch=float(line.get("epoch") or 0.0),
        loss=loss,
        learning_rate=_number(line.get("learning_rate")),
        grad_norm=_number(line.get("grad_norm")),
        metrics=metrics,
    )


def parse_line(text: str, run_id: str, attempt: int) -> Progress:
    """One stdout line of the model CLI as a progress record."""
    try:
        line = json.loads(text)
    except json.JSONDecodeError:
        return Other(text)
    if not isinstance(line, dict):
        return Other(text)
    kind = line.get("type")
    if kind in ("step", "validation"):
        return _loss(line, run_id, attempt, "train" if kind == "step" else "validation") or Other(text)
    if kind == "checkpoint":
        return Checkpoint(path=Path(line["path"]), step=int(line["step"]))
    if kind == "adapter":
        return Adapter(path=Path(line["path"]), sha256=line.get("sha256"))
    if kind == "completed":
        return Completed(
            final_loss=_number(line.get("final_loss")),
            best_validation_loss=_number(line.get("best_validation_loss")),
            steps=int(line.get("steps") or 0),
            seconds=float(line.get("seconds") or 0.0),
        )
    if kind == "failed":
        return Failed(error=str(line.get("error") or "training failed without a message"))
    return Other(text)
