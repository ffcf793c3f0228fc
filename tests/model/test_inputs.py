"""Every bad input fails before training with a message naming the file (and line) and the fault."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pydantic import ValidationError

from model.audio import load_audio, split_windows
from model.data import dataset_digest, file_sha256, read_rows
from model.errors import InputError
from model.training.config import TrainingConfig

from model_testing import REPO, write_clip, write_jsonl


# --- configuration ---

def test_defaults_are_valid_and_documented():
    config = TrainingConfig()
    assert config.base_model == "facebook/musicgen-small" and config.window_seconds == 30
    assert all(field.description for field in TrainingConfig.model_fields.values())


@pytest.mark.parametrize("field, value", [
    ("lora_r", 0), ("learning_rate", 0), ("learning_rate", 5.0), ("batch_size", 0), ("num_epochs", 0),
    ("validation_split", 1.0), ("lora_dropout", 1.0), ("dpo_beta", 0), ("precision", "fp16"),
    ("device", "tpu"), ("dataset_type", "rl"), ("window_seconds", 0.5), ("target_modules", []),
    ("no_such_field", 1),
])
def test_out_of_range_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ValidationError) as error:
        TrainingConfig(**{field: value})
    assert [e["loc"][0] for e in error.value.errors()] == [field]


def test_config_module_does_not_import_torch():
    code = "import sys, model.training.config; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# --- dataset rows ---

def test_rows_resolve_relative_paths_and_skip_blank_lines(clips: Path, tmp_path: Path):
    absolute = write_clip(tmp_path / "elsewhere.wav", 1.0, 220)
    path = write_jsonl(clips / "mixed.jsonl", [{"prompt": "a", "audio_path": "clip0.wav", "id": 7},
                                                {"prompt": "b", "audio_path": str(absolute)}])
    path.write_text(path.read_text().replace("\n", "\n\n", 1))
    rows = read_rows(path, "supervised")
    assert [(r.line, r.audio) for r in rows] == [(1, (clips / "clip0.wav",)), (3, (absolute,))]


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 2: not valid JSON"),
    ('["prompt", "clip0.wav"]', "line 2: expected a JSON object"),
    ('{"prompt": "x"}', "line 2: missing field 'audio_path'"),
    ('{"prompt": "", "audio_path": "clip0.wav"}', "line 2: field 'prompt' must be a non-empty string"),
    ('{"prompt": 3, "audio_path": "clip0.wav"}', "line 2: field 'prompt' must be a non-empty string"),
    ('{"prompt": "x", "audio_path": "missing.wav"}', "line 2: audio_path"),
])
def test_bad_supervised_row_names_its_line(clips: Path, line: str, message: str):
    path = clips / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "ok", "audio_path": "clip0.wav"}) + "\n" + line + "\n")
    with pytest.raises(InputError, match=message) as error:
        read_rows(path, "supervised")
    assert str(path) in str(error.value)


def test_bad_preference_row_names_the_missing_side(clips: Path):
    path = write_jsonl(clips / "bad-pref.jsonl", [{"prompt": "x", "chosen_path": "clip0.wav"}])
    with pytest.raises(InputError, match="line 1: missing field 'rejected_path'"):
        read_rows(path, "preference")


def test_empty_or_missing_dataset(tmp_path: Path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(InputError, match="no rows"):
        read_rows(tmp_path / "empty.jsonl", "supervised")
    with pytest.raises(InputError, match="not found"):
        read_rows(tmp_path / "absent.jsonl", "supervised")


def test_dataset_digest_depends_on_content_not_location(clips: Path, tmp_path: Path):
    rows = [{"prompt": "a", "audio_path": "clip0.wav"}, {"prompt": "b", "audio_path": "clip1.wav"}]
    for name in ("clip0.wav", "clip1.wav"):
        (tmp_path / name).write_bytes((clips / name).read_bytes())

    def digest(folder: Path, rows: list[dict]) -> str:
        parsed = read_rows(write_jsonl(folder / "d.jsonl", rows), "supervised")
        return dataset_digest(parsed, {p: file_sha256(p) for r in parsed for p in r.audio})

    assert digest(clips, rows) == digest(tmp_path, rows)
    assert digest(clips, rows) != digest(clips, rows[::-1])


# --- audio ---

@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg", "mp3"])
def test_formats_decode_resample_and_mix(tmp_path: Path, suffix: str):
    path = write_clip(tmp_path / f"clip.{suffix}", 1.0, 440, rate=44_100, channels=2)
    audio = load_audio(path, 32_000, channels=1)
    assert audio.dtype == np.float32 and audio.shape[0] == 1
    assert abs(audio.shape[1] - 32_000) < 2_000  # mp3 and ogg pad the ends a little
    assert load_audio(path, 32_000, channels=2).shape[0] == 2


def test_mono_to_stereo_duplicates(tmp_path: Path):
    audio = load_audio(write_clip(tmp_path / "m.wav", 1.0, 440), 32_000, channels=2)
    assert np.array_equal(audio[0], audio[1])


def test_long_clips_are_cut_into_windows_dropping_a_short_remainder(tmp_path: Path):
    def windows(seconds: float) -> list[float]:
        audio = np.zeros((1, int(seconds * 32_000)), dtype=np.float32)
        return [w.shape[1] / 32_000 for w in split_windows(audio, 32_000, 1.5, tmp_path / "x.wav")]

    assert windows(1.2) == [1.2]
    assert windows(3.2) == [1.5, 1.5]  # 0.2 s remainder dropped
    assert windows(4.2) == [1.5, 1.5, 1.2]
    with pytest.raises(InputError, match="x.wav: audio is 0.50 s long"):
        windows(0.5)


def _write(path: Path, data: np.ndarray, subtype: str = "PCM_16") -> Path:
    sf.write(path, data, 32_000, subtype=subtype)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "absent.wav", "audio file not found"),
    (lambda d: _write(d / "empty.wav", np.zeros(0, dtype=np.float32)), "empty"),
    (lambda d: _write(d / "silent.wav", np.zeros(32_000, dtype=np.float32)), "silent"),
    (lambda d: _write(d / "hiss.wav", np.full(32_000, 1e-4, dtype=np.float32), "FLOAT"), "silent"),
    (lambda d: _write(d / "nan.wav", np.full(32_000, np.nan, dtype=np.float32), "FLOAT"), "corrupt"),
    (lambda d: (d / "garbage.wav").write_bytes(np.random.default_rng(0).bytes(5000)) and d / "garbage.wav",
     "cannot decode"),
    (lambda d: (d / "text.mp3").write_text("not audio at all") and d / "text.mp3", "cannot decode"),
])
def test_bad_audio_names_the_file(tmp_path: Path, make, message: str):
    path = make(tmp_path)
    with pytest.raises(InputError, match=message) as error:
        load_audio(path, 32_000, channels=1)
    assert str(path) in str(error.value)
