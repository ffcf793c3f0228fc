"""Helpers the model tests share (imported by name: tests/model is on sys.path under pytest)."""

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
RATE = 32_000
PROMPTS = ["slow jazz piano", "fast rock drums", "calm ambient synth"]


def write_clip(path: Path, seconds: float, pitch: float, rate: int = RATE, channels: int = 1, seed: int = 0) -> Path:
    """A tone with a little noise: real, decodable audio whose codes differ with the pitch."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(t.size)
    data = np.stack([mono * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)
    sf.write(path, data, rate)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@dataclass
class CliRun:
    returncode: int
    events: list[dict]
    stderr: str

    def of_type(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]


def parse_events(stdout: str) -> list[dict]:
    """Every stdout line must be one JSON object with a type."""
    events = [json.loads(line) for line in stdout.splitlines()]
    assert all(isinstance(e, dict) and "type" in e for e in events), stdout
    return events


def cli_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "model.training.cli", "train", *map(str, args)]


def stopped_after_its_first_step(*args: str | Path, cache_dir: Path, stderr: Path) -> tuple[int, list[dict]]:
    """Run the training CLI with `args` and send it SIGTERM once it reports its first step; its exit
    code and every event it printed."""
    with stderr.open("w") as err:
        process = subprocess.Popen(cli_command(*args), cwd=REPO, env=cli_env(cache_dir), stdout=subprocess.PIPE,
                                   stderr=err, text=True)
        lines = []
        while not lines or json.loads(lines[-1])["type"] != "step":
            lines.append(process.stdout.readline())
        process.send_signal(signal.SIGTERM)
        lines += process.stdout.readlines()
        return process.wait(timeout=120), parse_events("".join(lines))


def cli_env(cache_dir: Path) -> dict[str, str]:
    # One thread: the tiny model's matmuls gain nothing from two, and on a shared 2-core machine two
    # spinning threads per process made runs 10x slower.
    return {**os.environ, "CADENZA_CACHE_DIR": str(cache_dir), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def tiny_examples(tiny_model: Path, dataset: Path, dataset_type: str, cache_dir: Path, window_seconds: float = 30.0):
    """The tiny model (frozen, CPU), its processor and the dataset's encoded examples."""
    import torch

    from model.data import file_sha256, read_rows
    from model.loading import load_base_model
    from model.training.features import FeatureCache, compute_features

    model, processor = load_base_model(str(tiny_model), torch.device("cpu"))
    rows = read_rows(dataset, dataset_type)
    sha = {p: file_sha256(p) for row in rows for p in row.audio}
    examples = compute_features(model, processor, rows, sha, window_seconds, FeatureCache(cache_dir))
    return model, processor, examples
