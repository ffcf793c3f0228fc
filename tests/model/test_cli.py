"""The training command line end to end, as the trainer service runs it: a subprocess whose stdout is
JSON lines and whose exit code says what happened."""

import argparse
import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model.data import file_sha256
from model.errors import InputError
from model.training.cli import build_config, parse_args
from model.training.protocol import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_STOPPED
from model_testing import REPO, cli_env, parse_events, stopped_after_its_first_step, write_jsonl

STEP_FIELDS = {"type", "step", "epoch", "loss", "learning_rate", "grad_norm"}
DPO_FIELDS = {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"}


def test_supervised_run_reports_checkpoints_and_writes_the_adapter(supervised_run):
    run, output = supervised_run
    types = [e["type"] for e in run.events]
    assert types[0] == "started" and types[-2:] == ["adapter", "completed"]
    started = run.events[0]
    # 6 rows, two of them 3.2 s long and cut into two 1.5 s windows: 8 examples; one row held out.
    assert started["rows"] == 6 and started["train_examples"] + started["validation_examples"] == 8
    assert started["validation_examples"] in (1, 2)
    assert started["device"] == "cpu" and started["total_steps"] == 24

    steps = run.of_type("step")
    assert [s["step"] for s in steps] == list(range(1, 25))
    assert all(set(s) == STEP_FIELDS and math.isfinite(s["loss"]) for s in steps)
    per_epoch = math.ceil(started["train_examples"] / 2)
    assert [s["epoch"] for s in steps] == [1 + i // per_epoch for i in range(24)]
    assert sum(s["loss"] for s in steps[-3:]) < sum(s["loss"] for s in steps[:3]) - 0.1  # it learns

    checkpoints = run.of_type("checkpoint")
    assert [c["step"] for c in checkpoints] == [4, 8, 12, 16, 20, 24]
    for checkpoint in checkpoints:
        folder = Path(checkpoint["path"])
        assert folder == output / "checkpoints" / f"step-{checkpoint['step']:06d}"
        assert {"adapter_model.safetensors", "adapter_config.json", "training_state.pt", "checkpoint.json"} <= {
            p.name for p in folder.iterdir()}
    validations = run.of_type("validation")
    assert [v["step"] for v in validations] == [4, 8, 12, 16, 20, 24]

    adapter = run.of_type("adapter")[0]
    assert adapter["path"] == str(output / "adapter")
    assert adapter["sha256"] == file_sha256(output / "adapter" / "adapter_model.safetensors")
    manifest = json.loads((output / "adapter" / "manifest.json").read_text())
    completed = run.events[-1]
    assert completed["steps"] == manifest["steps"] == 24
    assert completed["final_loss"] == manifest["final_loss"] == steps[-1]["loss"]
    assert completed["best_validation_loss"] == min(v["loss"] for v in validations)
    assert manifest["dataset_digest"] == started["dataset_digest"]
    assert manifest["training_config"]["lora_dropout"] == 0.1 and manifest["base_model"] == started["config"][
        "base_model"]


def test_sigterm_checkpoints_and_resume_gives_the_same_losses(
    supervised_run, tmp_path, cache_dir, tiny_model, supervised_jsonl, supervised_config, run_cli
):
    reference, _ = supervised_run
    args = ["--dataset", supervised_jsonl, "--type", "supervised", "--name", "sup", "--base-model", tiny_model,
            "--config", supervised_config]
    returncode, stopped = stopped_after_its_first_step(*args, "--output", tmp_path / "a", cache_dir=cache_dir,
                                                       stderr=tmp_path / "stderr.txt")
    assert returncode == EXIT_STOPPED
    checkpoint = stopped[-1]
    assert checkpoint["type"] == "checkpoint" and checkpoint["step"] < 24
    assert not (tmp_path / "a" / "adapter").exists()

    # Resume in a new process (as on another machine), repeating the run's flags.
    resumed = run_cli(*args, "--output", tmp_path / "b", "--resume", checkpoint["path"])
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.events[0]["start_step"] == checkpoint["step"]
    after = [(s["step"], s["loss"], s["grad_norm"]) for s in resumed.of_type("step")]
    expected = [(s["step"], s["loss"], s["grad_norm"]) for s in reference.of_type("step")[checkpoint["step"]:]]
    assert after == expected  # exactly: same data order, same dropout draws, same optimizer state
    assert resumed.of_type("adapter")[0]["sha256"] == reference.of_type("adapter")[0]["sha256"]



def test_preference_run_starts_at_log_2_and_separates_the_pair(tmp_path, run_cli, tiny_model, preference_jsonl):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"validation_split": 0.34, "checkpoint_every": 3, "precision": "fp32"}))  # hold out 1 of 3 pairs
    run = run_cli("--dataset", preference_jsonl, "--type", "preference", "--output", tmp_path, "--name", "dpo",
                  "--base-model", tiny_model, "--epochs", "12", "--batch-size", "2", "--lr", "0.01",
                  "--config", config)
    assert run.returncode == 0, run.stderr
    steps = run.of_type("step")
    assert len(steps) == 12 and all(set(s) == STEP_FIELDS | DPO_FIELDS for s in steps)
    validations = run.of_type("validation")
    assert [v["step"] for v in validations] == [3, 6, 9, 12] and all(math.isfinite(v["loss"]) for v in validations)
    assert abs(steps[0]["loss"] - math.log(2)) < 1e-6 and steps[0]["rewards/margins"] == 0
    assert steps[-1]["loss"] < steps[0]["loss"] and steps[-1]["rewards/margins"] > 0
    assert steps[-1]["rewards/accuracies"] == 1.0
    assert (tmp_path / "adapter" / "manifest.json").is_file()


def test_bad_inputs_exit_2_naming_the_problem(tmp_path, run_cli, tiny_model, clips):
    common = ["--type", "supervised", "--name", "bad", "--base-model", tiny_model]

    bad_row = write_jsonl(tmp_path / "rows.jsonl", [{"prompt": "ok", "audio_path": str(clips / "clip0.wav")}])
    bad_row.write_text(bad_row.read_text() + '{"prompt": "no audio"}\n')
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(32_000, dtype=np.float32), 32_000)
    silent_rows = write_jsonl(tmp_path / "silent.jsonl", [{"prompt": "quiet", "audio_path": "silent.wav"}])

    cases = [
        (["--dataset", bad_row], f"{bad_row}, line 2: missing field 'audio_path'"),
        (["--dataset", silent_rows], f"{silent}: audio is silent"),
    ]
    # Independent runs, each mostly starting up on one core: side by side.
    with ThreadPoolExecutor(len(cases)) as pool:
        started = [pool.submit(run_cli, *common, "--output", tmp_path / f"out-{number}", *args)
                   for number, (args, _) in enumerate(cases)]
    for future, (_, message) in zip(started, cases):
        run = future.result()
        assert run.returncode == EXIT_BAD_INPUT, run.stderr
        assert run.events[-1]["type"] == "failed" and message in run.events[-1]["error"]


def _args(*extra: str) -> argparse.Namespace:
    return parse_args(["train", "--dataset", "d.jsonl", "--type", "supervised", "--output", "o", "--name", "n",
                       *extra])


def test_flags_override_the_config_file_and_are_range_checked(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"learning_rate": 0.001, "lora_r": 4, "warmup_steps": 10}))
    built = build_config(_args("--config", str(config), "--lr", "0.01"))
    assert (built.learning_rate, built.lora_r, built.warmup_steps) == (0.01, 4, 10)
    with pytest.raises(InputError, match="lora_r: Input should be greater than or equal to 1"):
        build_config(_args("--lora-r", "0"))
    config.write_text(json.dumps({"lora_rank": 4}))
    with pytest.raises(InputError, match="lora_rank: Extra inputs are not permitted"):
        build_config(_args("--config", str(config)))


def test_resume_keeps_the_checkpoint_config(supervised_run, tmp_path):
    _, output = supervised_run
    checkpoint = str(output / "checkpoints" / "step-000004")
    resumed = build_config(_args("--resume", checkpoint, "--base-model", str(tmp_path), "--lr", "0.01"))
    assert resumed.max_steps == 24 and resumed.base_model == str(tmp_path)  # the base model may move
    with pytest.raises(InputError, match="learning_rate=0.5 differs from checkpoint"):
        build_config(_args("--resume", checkpoint, "--lr", "0.5"))
    with pytest.raises(InputError, match="not a checkpoint folder"):
        build_config(_args("--resume", str(tmp_path)))


def test_a_failure_in_training_exits_1_with_the_reason(tmp_path, cache_dir, tiny_model, supervised_jsonl):
    # Fault injection: a loss that turns NaN, as a diverging run's would.
    code = ("import sys, model.training.trainer as trainer\n"
            "trainer.supervised_loss = lambda logprobs, valid, tokens: logprobs.sum() * float('nan')\n"
            "from model.training.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    args = ["train", "--dataset", supervised_jsonl, "--type", "supervised", "--output", tmp_path, "--name", "nan",
            "--base-model", tiny_model]
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO, env=cli_env(cache_dir),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == EXIT_FAILED, done.stderr
    failed = parse_events(done.stdout)[-1]
    assert failed["type"] == "failed" and "loss became nan at step 1" in failed["error"]
