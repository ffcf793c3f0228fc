"""The training loop in-process: it over-fits a fixed batch, and the feature cache is reused."""

from pathlib import Path

import torch

from model.tiny import build_tiny_model
from model.training.config import TrainingConfig
from model.training.features import default_cache_dir
from model.training.trainer import train
from model_testing import tiny_examples, write_clip, write_jsonl


def run(config: TrainingConfig, dataset: Path, output: Path, cache_dir: Path) -> list[dict]:
    events = []
    train(config, dataset, output, "test", events.append, cache_dir)
    return events


def test_loss_goes_down_when_overfitting_a_fixed_batch(tiny_model, clips, cache_dir, tmp_path):
    dataset = write_jsonl(tmp_path / "two.jsonl", [{"prompt": "slow jazz piano", "audio_path": str(clips / "clip0.wav")},
                                                   {"prompt": "fast rock drums", "audio_path": str(clips / "clip1.wav")}])
    config = TrainingConfig(base_model=str(tiny_model), batch_size=2, num_epochs=40, learning_rate=0.01,
                            lora_dropout=0.0, condition_dropout=0.0, checkpoint_every=1000, device="cpu",
                            precision="fp32")
    losses = [e["loss"] for e in run(config, dataset, tmp_path / "out", cache_dir) if e["type"] == "step"]
    assert len(losses) == 40
    assert losses[-1] < losses[0] - 0.5, losses
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= 35  # it descends almost every step


def test_features_are_cached_by_content(tiny_model, tmp_path):
    clip = write_clip(tmp_path / "a.wav", 1.0, 330)
    dataset = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "warm bass", "audio_path": "a.wav"}])
    cache = tmp_path / "cache"
    _, _, first = tiny_examples(tiny_model, dataset, "supervised", cache)
    files = sorted(p.relative_to(cache) for p in cache.rglob("*.pt"))
    assert [p.parts[0] for p in files] == ["codes", "text"]

    # A hit is served from disk: poison the stored codes and see them come back.
    codes_file = cache / files[0]
    torch.save([torch.zeros_like(first[0].codes[0], dtype=torch.int16)], codes_file)
    _, _, second = tiny_examples(tiny_model, dataset, "supervised", cache)
    assert second[0].codes[0].abs().sum() == 0 and torch.equal(second[0].text, first[0].text)

    # New audio content or a different model means new keys.
    write_clip(clip, 1.0, 660)
    tiny_examples(tiny_model, dataset, "supervised", cache)
    other_model = build_tiny_model(tmp_path / "other", seed=1)
    tiny_examples(other_model, dataset, "supervised", cache)
    assert len(list(cache.rglob("*.pt"))) == 2 + 1 + 2
    assert not list(cache.rglob("*.partial"))


def test_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CADENZA_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("CADENZA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "cadenza"
