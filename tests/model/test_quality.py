"""What training learns from: accumulation weights, the DPO passes, how clips become windows, and
the inputs a run refuses or converts. Every numeric verdict runs in fp32."""

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file
from transformers import MusicgenForConditionalGeneration

from model import audio
from model.errors import InputError
from model.loading import add_lora, load_base_model
from model.tiny import build_tiny_model
from model.training import features
from model.training.batches import codebook_delays, collate, reference_logprobs, token_logprobs
from model.training.config import DEFAULT_TARGET_MODULES, TrainingConfig
from model.training.features import epoch_windows
from model.training.protocol import CompletedLine, Line, StepLine
from model.training.trainer import set_training, train
from model_testing import tiny_examples, write_clip, write_jsonl

PAD = START = 2048


def run(config: TrainingConfig, dataset: Path, output: Path, cache_dir: Path) -> list[Line]:
    lines = []
    train(config, dataset, output, "test", lines.append, cache_dir)
    return lines


def test_accumulation_weights_micro_batches_by_tokens(tiny_model, clips, cache_dir, tmp_path):
    # Three 1 s clips and one 3.2 s clip: any split into two micro-batches of two has unequal tokens.
    rows = [{"prompt": p, "audio_path": str(clips / name)}
            for p, name in [("a", "clip0.wav"), ("b", "clip3.wav"), ("c", "clip0.wav"), ("d", "clip2.wav")]]
    dataset = write_jsonl(tmp_path / "four.jsonl", rows)
    common = dict(base_model=str(tiny_model), num_epochs=1, learning_rate=0.01, lora_dropout=0.0,
                  condition_dropout=0.0, device="cpu", precision="fp32")
    whole = run(TrainingConfig(batch_size=4, **common), dataset, tmp_path / "whole", cache_dir)
    accumulated = run(TrainingConfig(batch_size=2, gradient_accumulation_steps=2, **common), dataset,
                      tmp_path / "accumulated", cache_dir)
    (step_whole,), (step_accumulated,) = ([line for line in lines if isinstance(line, StepLine)]
                                          for lines in (whole, accumulated))
    assert step_whole.loss == pytest.approx(step_accumulated.loss, rel=1e-6)
    assert step_whole.grad_norm == pytest.approx(step_accumulated.grad_norm, rel=1e-5)
    weights = [load_file(tmp_path / name / "adapter" / "adapter_model.safetensors") for name in ("whole", "accumulated")]
    assert all(torch.allclose(weights[0][k], weights[1][k], atol=1e-5) for k in weights[0])


def _trained_looking_lora(tiny_model: Path, dropout: float):
    model, _ = load_base_model(str(tiny_model), torch.device("cpu"))
    torch.manual_seed(0)
    model = add_lora(model, r=8, alpha=16, dropout=dropout, target_modules=list(DEFAULT_TARGET_MODULES))
    with torch.no_grad():  # LoRA's B starts at zero, where dropout would change nothing
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.1)
    return model


def test_dpo_policy_pass_has_no_dropout(tiny_model, preference_jsonl, cache_dir):
    _, _, examples = tiny_examples(tiny_model, preference_jsonl, "preference", cache_dir)
    model = _trained_looking_lora(tiny_model, dropout=0.5)
    batch = collate(examples, codebook_delays(4, 1), PAD)
    set_training(model, True, lora_dropout=True)  # supervised training: LoRA dropout on
    with torch.no_grad():
        first, second = (token_logprobs(model, batch, PAD, START)[0].sum() for _ in range(2))
    assert first != second
    set_training(model, True, lora_dropout=False)  # the DPO policy pass
    with torch.no_grad():
        first, second = (token_logprobs(model, batch, PAD, START)[0].sum() for _ in range(2))
    assert first == second


def test_dpo_reference_is_computed_once_and_equals_a_fresh_forward(tiny_model, preference_jsonl, cache_dir, tmp_path,
                                                                   monkeypatch):
    _, _, examples = tiny_examples(tiny_model, preference_jsonl, "preference", cache_dir)
    model = _trained_looking_lora(tiny_model, dropout=0.0)
    cached = reference_logprobs(model, examples, [[2, 0], [1]], codebook_delays(4, 1), PAD, START)
    assert cached.shape == (len(examples), 2)
    with torch.no_grad(), model.disable_adapter():
        for index, example in enumerate(examples):
            fresh, _ = token_logprobs(model, collate([example], codebook_delays(4, 1), PAD), PAD, START)
            assert torch.allclose(cached[index], fresh.sum((1, 2)), rtol=1e-6)

    # A run of 2 epochs over 3 pairs, one pair per step: 6 policy forwards and 3 reference forwards.
    forwards = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, output: forwards.append(1) if type(module).__name__ == "MusicgenDecoder" else None)
    try:
        config = TrainingConfig(dataset_type="preference", base_model=str(tiny_model), num_epochs=2, batch_size=1,
                                device="cpu", precision="fp32", checkpoint_every=1000)
        events = run(config, preference_jsonl, tmp_path / "dpo", cache_dir)
    finally:
        hook.remove()
    assert [line.type for line in events].count("step") == 6
    assert len(forwards) == 6 + 3


def _clip_frames(seconds: float) -> int:
    return int(seconds * 50)


def test_preference_pairs_are_cut_into_aligned_windows_of_equal_length(tiny_model, tmp_path):
    write_clip(tmp_path / "chosen.wav", 4.0, 220, seed=1)
    write_clip(tmp_path / "rejected.wav", 2.5, 330, seed=2)
    dataset = write_jsonl(tmp_path / "pair.jsonl",
                          [{"prompt": "warm bass", "chosen_path": "chosen.wav", "rejected_path": "rejected.wav"}])
    _, _, examples = tiny_examples(tiny_model, dataset, "preference", tmp_path / "cache", window_seconds=1.5)
    # The shorter clip (125 frames) gives two 75-frame windows, the second ending at its end; the
    # chosen clip is cut at the same frames.
    assert [e.start for e in examples] == [0, 50]
    for example in examples:
        chosen, rejected = example.window()
        assert chosen.shape == rejected.shape == (4, 75)
        assert torch.equal(chosen, example.codes[0][:, example.start : example.start + 75])
        assert torch.equal(rejected, example.codes[1][:, example.start : example.start + 75])
    assert epoch_windows(examples, seed=0, epoch=3, dataset_type="preference") == examples  # fixed: cached reference


def test_supervised_windows_move_every_epoch_reproducibly(tiny_model, clips, tmp_path):
    dataset = write_jsonl(tmp_path / "long.jsonl", [{"prompt": "drums", "audio_path": str(clips / "clip2.wav")}])
    _, _, examples = tiny_examples(tiny_model, dataset, "supervised", tmp_path / "cache", window_seconds=1.5)
    assert len(examples) == 2 and all(e.frames == 75 and e.codes[0].shape[1] == 150 for e in examples)

    def starts(seed: int, epoch: int) -> list[int]:
        return [e.start for e in epoch_windows(examples, seed=seed, epoch=epoch, dataset_type="supervised")]

    drawn = [starts(0, epoch) for epoch in range(6)]
    assert all(0 <= s <= 150 - 75 for epoch in drawn for s in epoch)
    assert len({tuple(d) for d in drawn}) == 6  # a new cut every epoch
    assert starts(0, 4) == drawn[4] and starts(1, 4) != drawn[4]  # a function of (seed, epoch) alone
    moved = epoch_windows(examples, seed=0, epoch=1, dataset_type="supervised")[0]
    assert torch.equal(moved.window()[0], examples[0].codes[0][:, moved.start : moved.start + 75])


def test_anti_phase_stereo_is_refused_as_silent_after_mixdown(tmp_path):
    t = np.arange(32_000) / 32_000
    left = 0.5 * np.sin(2 * np.pi * 220 * t)
    path = tmp_path / "anti.wav"
    sf.write(path, np.stack([left, -left], axis=1).astype(np.float32), 32_000, subtype="FLOAT")
    with pytest.raises(InputError, match="silent after mixing to mono") as error:
        audio.load_audio(path, 32_000, channels=1)
    assert str(path) in str(error.value)
    assert audio.load_audio(path, 32_000, channels=2).shape == (2, 32_000)  # a stereo model keeps both


def test_base_model_saved_in_fp16_trains_in_fp32(tiny_model, clips, cache_dir, tmp_path):
    half = tmp_path / "half"
    MusicgenForConditionalGeneration.from_pretrained(tiny_model).half().save_pretrained(half)
    for file in tiny_model.iterdir():  # the processor's files
        if not (half / file.name).exists():
            (half / file.name).write_bytes(file.read_bytes())
    model, _ = load_base_model(str(half), torch.device("cpu"))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    dataset = write_jsonl(tmp_path / "one.jsonl", [{"prompt": "jazz", "audio_path": str(clips / "clip0.wav")}])
    config = TrainingConfig(base_model=str(half), max_steps=2, batch_size=1, device="cpu", precision="fp32")
    events = run(config, dataset, tmp_path / "out", cache_dir)
    assert isinstance(events[-1], CompletedLine) and math.isfinite(events[-1].final_loss)


def test_feature_cache_key_changes_with_the_preprocessing_version(tiny_model, clips, tmp_path, monkeypatch):
    dataset = write_jsonl(tmp_path / "one.jsonl", [{"prompt": "jazz", "audio_path": str(clips / "clip0.wav")}])
    cache = tmp_path / "cache"
    tiny_examples(tiny_model, dataset, "supervised", cache)
    assert len(list((cache / "codes").rglob("*.pt"))) == 1
    monkeypatch.setattr(features, "PREPROCESSING_VERSION", features.PREPROCESSING_VERSION + 1)
    tiny_examples(tiny_model, dataset, "supervised", cache)
    assert len(list((cache / "codes").rglob("*.pt"))) == 2


def test_condition_dropout_trains_the_null_prompt_branch_by_default():
    assert TrainingConfig().condition_dropout == 0.1
