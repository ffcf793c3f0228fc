"""The model CLI's JSON lines, read into what the trainer acts on (pure logic, no servers)."""
from __future__ import annotations

import json
from pathlib import Path

from events.catalogue import LossReported
from services.trainer.progress import Adapter, Checkpoint, Completed, Failed, Other, parse_line


def line(**fields) -> str:
    return json.dumps(fields)


def test_a_step_line_becomes_a_loss_report_with_every_metric_it_carries():
    report = parse_line(line(type="step", step=7, epoch=2, loss=0.69, learning_rate=1e-4, grad_norm=0.5,
                             **{"rewards/margins": 0.25, "rewards/accuracies": 1.0, "note": "text is not a metric"}),
                        run_id="r", attempt=2)
    assert report == LossReported(run_id="r", attempt=2, split="train", step=7, epoch=2.0, loss=0.69,
                                  learning_rate=1e-4, grad_norm=0.5,
                                  metrics={"rewards/margins": 0.25, "rewards/accuracies": 1.0})


def test_a_validation_line_is_a_loss_report_on_the_validation_split():
    report = parse_line(line(type="validation", step=10, loss=1.5, best_loss=1.2), run_id="r", attempt=1)
    assert (report.split, report.step, report.loss, report.metrics) == ("validation", 10, 1.5, {"best_loss": 1.2})


def test_a_diverged_loss_is_logged_rather_than_reported():
    text = '{"type": "step", "step": 3, "epoch": 1, "loss": NaN}'
    assert parse_line(text, run_id="r", attempt=1) == Other(text)


def test_checkpoint_adapter_completed_and_failed_lines_steer_the_run():
    assert parse_line(line(type="checkpoint", step=4, path="/o/checkpoints/step-000004"), "r", 1) == \
        Checkpoint(path=Path("/o/checkpoints/step-000004"), step=4)
    assert parse_line(line(type="adapter", path="/o/adapter", sha256="ab"), "r", 1) == Adapter(Path("/o/adapter"), "ab")
    assert parse_line(line(type="completed", final_loss=0.5, best_validation_loss=None, steps=4, seconds=2.5), "r", 1) \
        == Completed(final_loss=0.5, best_validation_loss=None, steps=4, seconds=2.5)
    assert parse_line(line(type="failed", error="x.wav: cannot decode audio"), "r", 1) == Failed("x.wav: cannot decode audio")


def test_anything_else_is_a_plain_line():
    assert parse_line("Traceback (most recent call last):", "r", 1) == Other("Traceback (most recent call last):")
    assert parse_line(line(type="started", rows=3), "r", 1) == Other(line(type="started", rows=3))
    assert parse_line("[1, 2]", "r", 1) == Other("[1, 2]")
