"""Fixtures for the model tests: a tiny random MusicGen written by model.tiny, generated audio
clips and JSONL datasets, and a runner for the training command line as a subprocess.

Everything runs on CPU in seconds; the feature cache is one folder per test session.
"""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from model_testing import PROMPTS, REPO, CliRun, cli_command, cli_env, parse_events, write_clip, write_jsonl


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    """As in the CLI subprocesses (see cli_env): the tiny model runs fastest on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six clips of 1 to 3.2 s (the longest are cut into two 1.5 s windows by SUPERVISED_CONFIG)."""
    folder = tmp_path_factory.mktemp("clips")
    for i in range(6):
        write_clip(folder / f"clip{i}.wav", seconds=[1.0, 1.5, 3.2][i % 3], pitch=110 * 2 ** (i / 3), seed=i)
    return folder


@pytest.fixture(scope="session")
def supervised_jsonl(clips: Path) -> Path:
    rows = [{"prompt": PROMPTS[i % 3], "audio_path": f"clip{i}.wav"} for i in range(6)]
    return write_jsonl(clips / "supervised.jsonl", rows)


@pytest.fixture(scope="session")
def preference_jsonl(clips: Path) -> Path:
    rows = [{"prompt": PROMPTS[i], "chosen_path": f"clip{2 * i}.wav", "rejected_path": f"clip{2 * i + 1}.wav"}
            for i in range(3)]
    return write_jsonl(clips / "preference.jsonl", rows)


@pytest.fixture(scope="session")
def run_cli(cache_dir: Path):
    def run(*args: str | Path) -> CliRun:
        done = subprocess.run(cli_command(*args), cwd=REPO, env=cli_env(cache_dir), capture_output=True, text=True,
                              timeout=300)
        return CliRun(done.returncode, parse_events(done.stdout), done.stderr)

    return run


# The reference supervised run: LoRA dropout and condition dropout are on, so resuming it must
# restore the RNG to give the same losses. Precision is pinned: 'auto' is bf16 on CPUs with native
# bf16 and fp32 elsewhere, and the tests compare numbers.
SUPERVISED_CONFIG = {"precision": "fp32", "lora_dropout": 0.1, "condition_dropout": 0.3, "checkpoint_every": 4, "window_seconds": 1.5,
                     "validation_split": 0.2, "max_steps": 24, "num_epochs": 50, "learning_rate": 0.01,
                     "batch_size": 2}


@pytest.fixture(scope="session")
def supervised_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "config.json"
    path.write_text(json.dumps(SUPERVISED_CONFIG))
    return path


@pytest.fixture(scope="session")
def supervised_run(tmp_path_factory, run_cli, tiny_model, supervised_jsonl, supervised_config) -> tuple[CliRun, Path]:
    output = tmp_path_factory.mktemp("supervised-run")
    run = run_cli("--dataset", supervised_jsonl, "--type", "supervised", "--output", output, "--name", "sup",
                  "--base-model", tiny_model, "--config", supervised_config)
    assert run.returncode == 0, run.stderr
    return run, output
