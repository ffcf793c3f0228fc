"""The model CLI's JSON lines, read into what the trainer acts on (pure logic, no servers)."""
from __future__ import annotations

import json
from pathlib import Path

from events.catalogue import LossReported
from model.training.config import TrainingConfig
from model.training.protocol import AdapterLine, CheckpointLine, CompletedLine, FailedLine, StartedLine, write_line
from services.trainer.cli_lines import PlainLine, parse_line


def line(**fields) -> str:
    return json.dumps(fields)


def test_a_step_line_becomes_a_loss_report_with_every_metric_it_carries():
    report = parse_line(line(type="step", step=7, epoch=2, loss=0.69, learning_rate=1e-4, grad_norm=0.5,
                             **{"rewards/margins": 0.25, "rewards/accuracies": 1.0}),
                        run_id="r", attempt=2)
    assert report == LossReported(run_id="r", attempt=2, split="train", step=7, epoch=2.0, loss=0.69,
                                  learning_rate=1e-4, grad_norm=0.5,
                                  metrics={"rewards/margins": 0.25, "rewards/accuracies": 1.0})


def test_a_validation_line_is_a_loss_report_on_the_validation_split():
    report = parse_line(line(type="validation", step=10, loss=1.5, best_loss=1.2), run_id="r", attempt=1)
    assert (report.split, report.step, report.loss, report.metrics) == ("validation", 10, 1.5, {"best_loss": 1.2})


def test_a_diverged_loss_is_logged_rather_than_reported():
    text = '{"type": "step", "step": 3, "epoch": 1, "loss": NaN, "learning_rate": 0.1, "grad_norm": NaN}'
    assert parse_line(text, run_id="r", attempt=1) == PlainLine(text)


def test_the_lines_the_cli_writes_are_the_lines_the_trainer_reads():
    started = StartedLine(name="n", config=TrainingConfig(), device="cpu", precision="fp32", dataset=Path("/d.jsonl"),
                          dataset_digest="ab", rows=3, train_examples=3, validation_examples=0, total_steps=6,
                          start_step=0, resumed_from=None, trainable_parameters=100)
    for written in (started,
                    CheckpointLine(step=4, path=Path("/o/checkpoints/step-000004")),
                    AdapterLine(path=Path("/o/adapter"), sha256="ab"),
                    CompletedLine(final_loss=0.5, best_validation_loss=None, steps=4, seconds=2.5,
                                  adapter=Path("/o/adapter")),
                    FailedLine(error="x.wav: cannot decode audio", exit_code=2)):
        assert parse_line(write_line(written), "r", 1) == written


def test_anything_else_is_a_plain_line():
    assert parse_line("Traceback (most recent call last):", "r", 1) == PlainLine("Traceback (most recent call last):")
    assert parse_line(line(type="started", rows=3), "r", 1) == PlainLine(line(type="started", rows=3))
    assert parse_line(line(type="step", step=1, epoch=1, loss=0.5, learning_rate=0.1, grad_norm=1.0, note="text"),
                      "r", 1) == PlainLine(line(type="step", step=1, epoch=1, loss=0.5, learning_rate=0.1,
                                                grad_norm=1.0, note="text"))
    assert parse_line("[1, 2]", "r", 1) == PlainLine("[1, 2]")
