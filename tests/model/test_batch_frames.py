"""Batching by length (`batch_frames`): windows are packed once per run into batches of at most a
budget of padded frames, and every epoch draws the order of those batches. Every forward pass stays
within the budget, every window is trained on once an epoch, and a run resumes exactly."""

import json
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from model.errors import InputError
from model.training import batches, trainer
from model.training.batches import codebook_delays, collate, pack_by_frames, padded_frames, scoring_batches
from model.training.cli import build_config, parse_args
from model.training.config import TrainingConfig
from model.training.features import Example
from model.training.protocol import CompletedLine, StartedLine, StepLine, ValidationLine
from model.training.trainer import train
from model_testing import stopped_after_its_first_step

PAD = 2048


def _examples(frames: list[int], sides: int = 1) -> list[Example]:
    return [Example(row=i, text=torch.zeros(3, 8), codes=tuple(torch.zeros(4, n, dtype=torch.long) for _ in range(sides)),
                    start=0, frames=n) for i, n in enumerate(frames)]


def _record_forwards(monkeypatch: pytest.MonkeyPatch) -> list[list[Example]]:
    """The examples of every batch collated from now on: training's and validation's forwards, and
    DPO's reference scoring."""
    seen = []

    def recording(examples, *args, **kwargs):
        seen.append(list(examples))
        return collate(examples, *args, **kwargs)

    monkeypatch.setattr(trainer, "collate", recording)
    monkeypatch.setattr(batches, "collate", recording)
    return seen


def _train(config: TrainingConfig, dataset, output, cache_dir) -> list:
    lines = []
    train(config, dataset, output, "frames", lines.append, cache_dir)
    return lines


def _steps(lines: list) -> list[tuple[float, float]]:
    return [(line.loss, line.grad_norm) for line in lines if isinstance(line, StepLine)]


@pytest.mark.parametrize("sides", [1, 2], ids=["supervised", "preference"])
def test_packed_batches_stay_within_the_budget_hold_every_window_once_and_leave_no_room(sides):
    examples = _examples(np.random.default_rng(0).integers(50, 1500, 200).tolist(), sides)
    packed = pack_by_frames(examples, 6000)
    assert sorted(i for batch in packed for i in batch) == list(range(200))
    for batch in packed:
        labels = collate([examples[i] for i in batch], codebook_delays(4, 1), PAD).labels
        # padded_frames counts what collate builds: rows (a pair's two) times the longest window
        assert labels.shape[0] * (labels.shape[1] - 3) == padded_frames([examples[i] for i in batch]) <= 6000
    # Greedy over windows sorted by length: the next batch's shortest window would not have fitted.
    for batch, following in zip(packed, packed[1:]):
        assert padded_frames([examples[i] for i in batch + following[:1]]) > 6000
    frames = sum(e.frames * sides for e in examples)
    padded = sum(padded_frames([examples[i] for i in batch]) for batch in packed)
    assert padded < 1.1 * frames  # windows of like length share a batch: little padding
    assert pack_by_frames(examples, 6000) == packed


def test_at_equal_lengths_a_budget_of_batch_size_windows_packs_batch_size_slices():
    windows, pairs = _examples([50] * 7), _examples([50] * 7, sides=2)
    slices = [[0, 1, 2], [3, 4, 5], [6]]
    assert scoring_batches(windows, 3, None) == slices
    assert pack_by_frames(windows, 3 * 50) == pack_by_frames(windows, 4 * 50 - 1) == slices
    assert pack_by_frames(pairs, 2 * 3 * 50) == scoring_batches(pairs, 3, 2 * 3 * 50) == slices
    # A window longer than the budget gets a batch of its own (the trainer refuses such a budget).
    assert pack_by_frames(_examples([300, 50, 50]), 100) == [[1, 2], [0]]


def test_unequal_clips_train_in_packed_batches_shuffled_every_epoch(monkeypatch, tiny_model, supervised_jsonl,
                                                                     cache_dir, tmp_path):
    # One window per clip (30 s windows): 50, 75 and 160 frames, two of each. A budget of 200 packs
    # [50, 50], [75, 75], [160], [160]; two micro-batches a step, so two steps an epoch.
    forwards = _record_forwards(monkeypatch)
    config = TrainingConfig(base_model=str(tiny_model), batch_frames=200, gradient_accumulation_steps=2,
                            num_epochs=10, learning_rate=0.01, lora_dropout=0.0, condition_dropout=0.0,
                            checkpoint_every=1000, device="cpu", precision="fp32")
    lines = _train(config, supervised_jsonl, tmp_path / "out", cache_dir)
    started, completed = lines[0], lines[-1]
    steps = [line for line in lines if isinstance(line, StepLine)]
    assert isinstance(started, StartedLine) and isinstance(completed, CompletedLine)
    assert started.total_steps == len(steps) == completed.steps == 10 * 2
    assert [s.epoch for s in steps] == [1 + i // 2 for i in range(20)]

    assert len(forwards) == 10 * 4
    assert all(padded_frames(batch) <= 200 for batch in forwards)
    epochs = [[sorted(e.row for e in batch) for batch in forwards[i : i + 4]] for i in range(0, 40, 4)]
    assert all(sorted(row for batch in epoch for row in batch) == list(range(6)) for epoch in epochs)
    assert all(sorted(epoch) == sorted(epochs[0]) for epoch in epochs)  # packed once: the same batches
    assert len({json.dumps(epoch) for epoch in epochs}) > 1  # in an order drawn every epoch

    losses = [s.loss for s in steps]
    assert sum(losses[-2:]) < sum(losses[:2]) - 0.5, losses  # an epoch's two steps cover every clip


def test_a_budget_below_the_longest_window_is_refused_at_start(tiny_model, supervised_jsonl, preference_jsonl,
                                                               cache_dir, tmp_path):
    config = TrainingConfig(base_model=str(tiny_model), batch_frames=159, device="cpu", precision="fp32")
    with pytest.raises(InputError, match=r"batch_frames=159 cannot hold the longest window \(160 frames\)"):
        _train(config, supervised_jsonl, tmp_path / "sup", cache_dir)
    assert not (tmp_path / "sup" / "checkpoints").exists()
    # A pair is two rows: the longest pair's 75-frame windows need 150.
    config = config.model_copy(update={"dataset_type": "preference", "batch_frames": 149})
    with pytest.raises(InputError, match=r"\(150 frames, a pair counting twice\)"):
        _train(config, preference_jsonl, tmp_path / "dpo", cache_dir)


def test_dpo_reference_scoring_and_validation_are_packed_within_the_budget(monkeypatch, tiny_model, preference_jsonl,
                                                                           cache_dir, tmp_path):
    # Pairs of 50, 50 and 75 frames, one held out. batch_size 3 would score the two training pairs
    # together (200 frames or more): any forward that used it instead of the budget would exceed 150.
    forwards = _record_forwards(monkeypatch)
    config = TrainingConfig(dataset_type="preference", base_model=str(tiny_model), batch_size=3, batch_frames=150,
                            validation_split=0.34, num_epochs=2, checkpoint_every=1, device="cpu", precision="fp32")
    lines = _train(config, preference_jsonl, tmp_path / "dpo", cache_dir)
    steps = [line for line in lines if isinstance(line, StepLine)]
    validations = [line for line in lines if isinstance(line, ValidationLine)]
    assert len(steps) == lines[0].total_steps == 2 * 2 and len(validations) == 4
    # Reference scoring of 3 pairs, one training forward a step, one validation forward a checkpoint.
    assert len(forwards) == 3 + 4 + 4
    assert all(padded_frames(batch) <= 150 for batch in forwards)
    assert all(math.isfinite(line.loss) for line in steps + validations)


def test_equal_windows_one_per_batch_train_exactly_as_batch_size_one(tiny_model, supervised_jsonl, cache_dir,
                                                                      tmp_path):
    # 1 s windows: every one of the 10 windows is 50 frames. A budget of one window packs them one
    # per batch in index order, and the epoch's order of batches is drawn as the order of examples
    # is: the same steps, dropout draws included. (With batches of several windows the losses differ:
    # packed batches keep their members every epoch, batch_size slices of a new order do not.)
    common = dict(base_model=str(tiny_model), window_seconds=1.0, num_epochs=2, learning_rate=0.01,
                  lora_dropout=0.1, condition_dropout=0.3, validation_split=0.2, checkpoint_every=5, device="cpu",
                  precision="fp32")
    counted = _train(TrainingConfig(batch_size=1, **common), supervised_jsonl, tmp_path / "count", cache_dir)
    packed = _train(TrainingConfig(batch_size=5, batch_frames=50, **common), supervised_jsonl, tmp_path / "packed",
                    cache_dir)
    assert len(_steps(counted)) == counted[0].total_steps == 2 * counted[0].train_examples
    assert _steps(packed) == _steps(counted)
    validation = [[line.loss for line in lines if isinstance(line, ValidationLine)] for lines in (counted, packed)]
    assert len(validation[0]) >= 3 and validation[1] == validation[0]


def test_equal_windows_all_in_one_batch_train_as_one_batch_of_batch_size(tiny_model, supervised_jsonl, cache_dir,
                                                                         tmp_path):
    # The whole set in one forward each epoch, in index order rather than the epoch's order: the
    # same sums but for their order. Dropout off: its draws would fall on other rows.
    common = dict(base_model=str(tiny_model), window_seconds=1.0, num_epochs=4, learning_rate=0.01,
                  lora_dropout=0.0, condition_dropout=0.0, checkpoint_every=1000, device="cpu", precision="fp32")
    counted = _train(TrainingConfig(batch_size=10, **common), supervised_jsonl, tmp_path / "count", cache_dir)
    packed = _train(TrainingConfig(batch_frames=10 * 50, **common), supervised_jsonl, tmp_path / "packed", cache_dir)
    assert counted[0].train_examples == 10 and len(_steps(counted)) == 4
    assert np.allclose(_steps(packed), _steps(counted), rtol=1e-5), (_steps(packed), _steps(counted))


def test_sigterm_and_resume_with_batch_frames_give_the_same_losses(tmp_path, run_cli, cache_dir, tiny_model,
                                                                    supervised_jsonl):
    # 1.5 s windows of 50 and 75 frames: batches [50, 50] and [75, 75] of 200 frames, three or four
    # an epoch, so the stop falls within an epoch whose order of batches must be restored.
    # Dropout on: the resumed run must restore the random state too.
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"batch_frames": 200, "window_seconds": 1.5, "validation_split": 0.2, "max_steps": 12,
                                  "num_epochs": 50, "checkpoint_every": 4, "learning_rate": 0.01, "lora_dropout": 0.1,
                                  "condition_dropout": 0.3, "precision": "fp32"}))
    args = ["--dataset", supervised_jsonl, "--type", "supervised", "--name", "frames", "--base-model", tiny_model,
            "--config", config]
    # The reference run and the run that is stopped are independent: side by side.
    with ThreadPoolExecutor(1) as pool:
        running_reference = pool.submit(run_cli, *args, "--output", tmp_path / "reference")
        returncode, stopped = stopped_after_its_first_step(*args, "--output", tmp_path / "a", cache_dir=cache_dir,
                                                           stderr=tmp_path / "stderr.txt")
        reference = running_reference.result()
    assert reference.returncode == 0, reference.stderr
    assert len(reference.of_type("step")) == reference.events[0]["total_steps"] == 12
    assert returncode == 3
    checkpoint = stopped[-1]
    first_epoch = [s for s in reference.of_type("step") if s["epoch"] == 1]
    assert checkpoint["type"] == "checkpoint" and checkpoint["step"] < len(first_epoch)
    with pytest.raises(InputError, match="batch_frames=300 differs from checkpoint"):
        build_config(parse_args(["train", *map(str, args), "--output", "o", "--resume", checkpoint["path"],
                                 "--batch-frames", "300"]))

    resumed = run_cli(*args, "--output", tmp_path / "b", "--resume", checkpoint["path"])
    assert resumed.returncode == 0, resumed.stderr
    after = [(s["step"], s["epoch"], s["loss"], s["grad_norm"]) for s in resumed.of_type("step")]
    expected = [(s["step"], s["epoch"], s["loss"], s["grad_norm"]) for s in reference.of_type("step")]
    assert after == expected[checkpoint["step"]:]
    assert resumed.of_type("validation") == [v for v in reference.of_type("validation") if v["step"] > checkpoint["step"]]
    assert resumed.of_type("adapter")[0]["sha256"] == reference.of_type("adapter")[0]["sha256"]


def test_batch_frames_is_a_flag_and_off_by_default():
    required = ["train", "--dataset", "d.jsonl", "--type", "supervised", "--output", "o", "--name", "n"]
    assert build_config(parse_args([*required, "--batch-frames", "3000"])).batch_frames == 3000
    assert build_config(parse_args(required)).batch_frames is None
    with pytest.raises(InputError, match="batch_frames"):
        build_config(parse_args([*required, "--batch-frames", "0"]))
