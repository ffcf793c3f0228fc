"""Labels in the delay pattern, the supervised loss over exactly the valid positions, and DPO."""

import math

import pytest
import torch
import torch.nn.functional as F

from model.audio import load_audio
from model.loading import add_lora
from model.tiny import build_tiny_model
from model.training.batches import codebook_delays, collate, delay_labels, dpo_loss, supervised_loss, token_logprobs
from model.training.config import DEFAULT_TARGET_MODULES
from model.training.trainer import set_training
from model_testing import tiny_examples, write_clip, write_jsonl

PAD = START = 2048


def test_delay_pattern_matches_musicgen_and_pads_short_clips(tiny_model, supervised_jsonl, cache_dir):
    model, _, examples = tiny_examples(tiny_model, supervised_jsonl, "supervised", cache_dir)
    codes = examples[0].codes[0]  # (4, frames)
    frames = codes.shape[1]
    # HF's own recipe: start column, build_delay_pattern_mask's second output, drop column 0.
    with_start = torch.cat([torch.full((4, 1), START), codes], dim=1)
    _, pattern = model.decoder.build_delay_pattern_mask(with_start, pad_token_id=PAD, max_length=frames + 4)
    expected = pattern.reshape(1, 4, -1)[:, :, 1:].transpose(1, 2)
    assert torch.equal(delay_labels([codes], codebook_delays(4, 1), PAD), expected)

    short = codes[:, : frames // 2]
    labels = delay_labels([codes, short], codebook_delays(4, 1), PAD)
    for k in range(4):  # codebook k holds the short clip's codes at positions k .. k+len-1, pad elsewhere
        column = labels[1, :, k]
        assert torch.equal(column[k : k + short.shape[1]], short[k])
        assert (column[: k] == PAD).all() and (column[k + short.shape[1] :] == PAD).all()
    assert codebook_delays(8, 2) == [0, 0, 1, 1, 2, 2, 3, 3]  # stereo: each left/right pair shares a delay


def test_loss_is_cross_entropy_over_exactly_the_valid_positions(tiny_model, supervised_jsonl, cache_dir):
    model, _, examples = tiny_examples(tiny_model, supervised_jsonl, "supervised", cache_dir)
    batch = collate(examples[:3], codebook_delays(4, 1), PAD)  # three lengths: padding included
    with torch.no_grad():
        logprobs, valid = token_logprobs(model, batch, PAD, START)
        ours = supervised_loss(logprobs, valid)
        musicgen = model(encoder_outputs=(batch.text,), attention_mask=batch.text_mask, labels=batch.labels).loss
        # By hand: feed start + labels shifted right, score every position that holds a code.
        inputs = torch.cat([torch.full((3, 1, 4), START), batch.labels[:, :-1]], dim=1)
        logits = model(encoder_outputs=(batch.text,), attention_mask=batch.text_mask,
                       decoder_input_ids=inputs.transpose(1, 2).reshape(12, -1)).logits.reshape(3, 4, -1, 2048)
        terms = []
        for b in range(3):
            for k in range(4):
                for t in range(batch.labels.shape[1]):
                    label = batch.labels[b, t, k].item()
                    if label != PAD:
                        terms.append(-F.log_softmax(logits[b, k, t], dim=-1)[label])
    lengths = sum(e.codes[0].shape[1] for e in examples[:3])
    assert len(terms) == valid.sum() == 4 * lengths
    assert ours.item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-5)
    assert ours.item() == pytest.approx(musicgen.item(), rel=1e-5)


def test_null_condition_gives_finite_logits(tiny_model, supervised_jsonl, cache_dir):
    model, _, examples = tiny_examples(tiny_model, supervised_jsonl, "supervised", cache_dir)
    batch = collate(examples[:2], codebook_delays(4, 1), PAD, condition_dropout=1.0)
    assert batch.text.abs().sum() == 0 and batch.text_mask.sum() == 0
    with torch.no_grad():
        logprobs, valid = token_logprobs(model, batch, PAD, START)
    assert torch.isfinite(supervised_loss(logprobs, valid))


def test_dpo_starts_at_log_2_and_only_lora_gets_gradients(tiny_model, preference_jsonl, cache_dir):
    model, _, examples = tiny_examples(tiny_model, preference_jsonl, "preference", cache_dir)
    torch.manual_seed(0)
    model = add_lora(model, r=8, alpha=16, dropout=0.1, target_modules=list(DEFAULT_TARGET_MODULES))
    set_training(model, True)
    batch = collate(examples, codebook_delays(4, 1), PAD)
    assert batch.labels.shape[0] == 2 * len(examples)  # chosen and rejected in one forward
    logprobs, _ = token_logprobs(model, batch, PAD, START)
    with torch.no_grad(), model.disable_adapter():
        reference, _ = token_logprobs(model, batch, PAD, START)
    loss, metrics = dpo_loss(logprobs.sum((1, 2)), reference.sum((1, 2)), beta=0.01)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-7)
    assert metrics["rewards/margins"] == 0.0
    loss.backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert with_grad and all("lora_" in name for name in with_grad)
    assert {name for name, p in model.named_parameters() if p.requires_grad} == with_grad
    assert any(p.grad.abs().sum() > 0 for name, p in model.named_parameters() if "lora_B" in name)


def test_dpo_rewards_follow_the_policy():
    policy = torch.tensor([-10.0, -20.0, -30.0, -5.0])  # chosen: -10, -20; rejected: -30, -5
    reference = torch.tensor([-12.0, -20.0, -28.0, -5.0])
    loss, metrics = dpo_loss(policy, reference, beta=0.5)
    assert metrics["rewards/chosen"] == pytest.approx((1.0 + 0.0) / 2)
    assert metrics["rewards/rejected"] == pytest.approx((-1.0 + 0.0) / 2)
    assert metrics["rewards/margins"] == pytest.approx(1.0)
    assert metrics["rewards/accuracies"] == 0.5
    assert loss.item() == pytest.approx((-F.logsigmoid(torch.tensor(2.0)) + math.log(2)).item() / 2)


def test_stereo_codes_interleave_channels_in_musicgen_stereo_delay_pattern(tmp_path, cache_dir):
    stereo = build_tiny_model(tmp_path / "stereo", stereo=True)
    clip = write_clip(tmp_path / "stereo.wav", 1.0, 220, channels=2)
    dataset = write_jsonl(tmp_path / "stereo.jsonl", [{"prompt": "wide synth pads", "audio_path": "stereo.wav"}])
    model, _, (example,) = tiny_examples(stereo, dataset, "supervised", cache_dir)
    codes = example.codes[0]
    assert codes.shape == (8, 50)
    left = torch.from_numpy(load_audio(clip, 32_000, channels=2)[:1])
    with torch.no_grad():
        assert torch.equal(codes[0::2], model.audio_encoder.encode(left[None]).audio_codes[0, 0])

    delays = codebook_delays(8, 2)
    with_start = torch.cat([torch.full((8, 1), START), codes], dim=1)
    _, pattern = model.decoder.build_delay_pattern_mask(with_start, pad_token_id=PAD, max_length=50 + 4)
    assert torch.equal(delay_labels([codes], delays, PAD), pattern.reshape(1, 8, -1)[:, :, 1:].transpose(1, 2))
    batch = collate([example], delays, PAD)
    with torch.no_grad():
        ours = supervised_loss(*token_logprobs(model, batch, PAD, START))
        musicgen = model(encoder_outputs=(batch.text,), attention_mask=batch.text_mask, labels=batch.labels).loss
    assert ours.item() == pytest.approx(musicgen.item(), rel=1e-5)
