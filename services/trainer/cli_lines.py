"""The model CLI's stdout, read line by line into what the trainer acts on (pure: no I/O).

Each line is one of the protocol's (model/training/protocol.py). Step and validation lines become
`LossReported` events with every metric they carry; the others steer the run (the `started` line's
dataset digest is reported, checkpoints are uploaded, the adapter registered, the run completed or
failed). Anything else the CLI printed goes to the run's logs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import ValidationError

from events.catalogue import LossReported
from model.training.protocol import (
    AdapterLine, CheckpointLine, CompletedLine, FailedLine, StartedLine, StepLine, ValidationLine, read_line,
)


@dataclass(frozen=True)
class PlainLine:
    """A line that is not one of the protocol's (stray output, a traceback): logged as it is."""

    text: str


CliLine = LossReported | StartedLine | CheckpointLine | AdapterLine | CompletedLine | FailedLine | PlainLine


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _finite_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {key: value for key, value in metrics.items() if math.isfinite(value)}


def parse_line(text: str, run_id: str, attempt: int) -> CliLine:
    """One stdout line of the model CLI, step and validation lines as this attempt's loss reports."""
    try:
        line = read_line(text)
    except ValidationError:
        return PlainLine(text)
    if isinstance(line, (StepLine, ValidationLine)) and not math.isfinite(line.loss):
        return PlainLine(text)  # a diverged (NaN) loss has no place in LossReported; the line goes to the logs
    if isinstance(line, StepLine):
        return LossReported(run_id=run_id, attempt=attempt, split="train", step=line.step, epoch=line.epoch,
                            loss=line.loss, learning_rate=_finite(line.learning_rate),
                            grad_norm=_finite(line.grad_norm),
                            metrics=_finite_metrics(line.metrics))
    if isinstance(line, ValidationLine):
        return LossReported(run_id=run_id, attempt=attempt, split="validation", step=line.step, epoch=0.0,
                            loss=line.loss, metrics=_finite_metrics({"best_loss": line.best_loss}))
    return line
