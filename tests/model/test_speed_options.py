"""Speed and memory options: they change how a step is computed, not what it computes."""

import math

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from model.loading import add_lora, load_base_model, resolve_compile
from model.training.batches import codebook_delays, collate, supervised_loss, token_logprobs
from model.training.cli import build_config, parse_args
from model.tiny import build_tiny_model
from model.training.config import DEFAULT_TARGET_MODULES, TrainingConfig
from model.training.features import Example
from model.training.trainer import set_speed_options, set_training, store_frozen_weights, train
from model_testing import tiny_examples, write_jsonl

PAD = START = 2048


def _loss_and_grads(tiny_model, examples, checkpointing: bool) -> tuple[float, dict[str, torch.Tensor], int]:
    model, _ = load_base_model(str(tiny_model), torch.device("cpu"))
    torch.manual_seed(0)
    model = add_lora(model, r=8, alpha=16, dropout=0.0, target_modules=list(DEFAULT_TARGET_MODULES))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.1)
    set_speed_options(model, "fp32", activation_checkpointing=checkpointing, compile=False)
    layer_calls = []
    for layer in model.get_base_model().decoder.model.decoder.layers:
        layer.self_attn.register_forward_hook(lambda *_: layer_calls.append(1))  # inside the checkpoint
    set_training(model, True)
    loss = supervised_loss(*token_logprobs(model, collate(examples, codebook_delays(4, 1), PAD), PAD, START))
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return loss.item(), grads, len(layer_calls)


def test_activation_checkpointing_gives_the_same_loss_and_gradients(tiny_model, supervised_jsonl, cache_dir):
    _, _, examples = tiny_examples(tiny_model, supervised_jsonl, "supervised", cache_dir)
    plain_loss, plain_grads, plain_calls = _loss_and_grads(tiny_model, examples[:3], checkpointing=False)
    loss, grads, calls = _loss_and_grads(tiny_model, examples[:3], checkpointing=True)
    assert calls == 2 * plain_calls == 2 * 2  # each of the 2 layers runs again in the backward
    assert loss == pytest.approx(plain_loss, rel=1e-6)
    assert grads.keys() == plain_grads.keys()
    assert all(torch.allclose(grads[k], plain_grads[k], rtol=1e-5, atol=1e-7) for k in grads)


def test_bf16_keeps_frozen_weights_in_bf16_and_lora_in_fp32(tiny_model, supervised_jsonl, cache_dir, tmp_path):
    model, _, examples = tiny_examples(tiny_model, supervised_jsonl, "supervised", cache_dir)
    store_frozen_weights(model, "bf16")
    model = add_lora(model, r=8, alpha=16, dropout=0.1, target_modules=list(DEFAULT_TARGET_MODULES))
    decoder = model.get_base_model().decoder
    assert {p.dtype for p in decoder.parameters() if not p.requires_grad} == {torch.bfloat16}
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    assert model.get_base_model().text_encoder.dtype == torch.float32  # features stay fp32
    set_speed_options(model, "bf16", activation_checkpointing=True, compile=False)
    assert not any(m.cast_input_dtype_enabled for m in model.modules() if hasattr(m, "cast_input_dtype_enabled"))
    set_training(model, True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logprobs, valid = token_logprobs(model, collate(examples[:2], codebook_delays(4, 1), PAD), PAD, START)
    supervised_loss(logprobs, valid).backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters() if p.requires_grad)

    events = []
    clip = supervised_jsonl.parent / "clip0.wav"
    dataset = write_jsonl(tmp_path / "one.jsonl", [{"prompt": "jazz", "audio_path": str(clip)}])
    config = TrainingConfig(base_model=str(tiny_model), max_steps=2, batch_size=1, device="cpu", precision="bf16",
                            activation_checkpointing=True)
    train(config, dataset, tmp_path / "out", "bf16", events.append, cache_dir)
    assert events[0].precision == "bf16" and math.isfinite(events[-1].final_loss)


def test_options_round_trip_and_have_per_device_defaults():
    config = TrainingConfig(activation_checkpointing=True, compile="off")
    assert TrainingConfig(**config.model_dump()) == config
    assert TrainingConfig.model_validate_json(config.model_dump_json()) == config
    required = ["train", "--dataset", "d.jsonl", "--type", "supervised", "--output", "o", "--name", "n"]
    built = build_config(parse_args([*required, "--activation-checkpointing", "--compile", "on"]))
    assert (built.activation_checkpointing, built.compile) == (True, "on")
    assert build_config(parse_args([*required, "--no-activation-checkpointing"])).activation_checkpointing is False
    defaults = TrainingConfig()
    assert (defaults.activation_checkpointing, defaults.compile) == (False, "auto")
    assert resolve_compile("auto", torch.device("cpu")) is False
    assert resolve_compile("auto", torch.device("cuda")) is True
    assert resolve_compile("on", torch.device("cpu")) is True and resolve_compile("off", torch.device("cuda")) is False


def _training_losses(base_model, batch, compile: bool) -> tuple[list[float], list[int]]:
    """Three optimizer steps on one fixed batch: the losses and the frames dynamo had compiled after
    each step."""
    model, _ = load_base_model(str(base_model), torch.device("cpu"))
    torch.manual_seed(0)
    model = add_lora(model, r=8, alpha=16, dropout=0.0, target_modules=list(DEFAULT_TARGET_MODULES))
    set_speed_options(model, "fp32", activation_checkpointing=False, compile=compile)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-2)
    losses, frames = [], []
    for _ in range(3):
        set_training(model, True)
        loss = supervised_loss(*token_logprobs(model, batch, PAD, START))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        frames.append(counters["frames"]["ok"])
    return losses, frames


def test_compiled_training_steps_recompile_at_most_once_and_match_eager(tmp_path):
    # Four decoder layers: a guard on something that differs per layer (as the KV cache's per-layer
    # state did) recompiles the layer's frame once per layer.
    base_model = build_tiny_model(tmp_path / "deep", decoder_layers=4)
    generator = torch.Generator().manual_seed(0)
    examples = [Example(row=i, text=torch.randn(6, 32, generator=generator),
                        codes=(torch.randint(0, 2048, (4, 40), generator=generator),), start=0, frames=40)
                for i in range(2)]
    batch = collate(examples, codebook_delays(4, 1), PAD)
    eager, _ = _training_losses(base_model, batch, compile=False)
    torch._dynamo.reset()
    counters.clear()
    # Each frame may compile twice: the first layer's input needs no gradient, the others' do.
    with torch._dynamo.config.patch(recompile_limit=2, fail_on_recompile_limit_hit=True):
        compiled, frames = _training_losses(base_model, batch, compile=True)
    torch._dynamo.reset()
    assert frames[1:] == [frames[0]] * 2, f"later steps compiled again: {frames}"
    # one compiled layer serves every layer: at most the two variants above, however deep the decoder
    assert 0 < frames[0] <= 2, f"{frames[0]} frames compiled for 4 layers"
    assert compiled == pytest.approx(eager, rel=1e-5)
    assert eager[-1] < eager[0]
