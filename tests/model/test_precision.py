"""Precision: what 'auto' picks on each kind of hardware, and that a bf16 step agrees with fp32.

The machines this suite runs on differ (CPUs with and without native bf16, GPUs), so every branch of
`resolve_precision` is exercised here with the capability checks stubbed, and every other test that
compares numbers pins `precision="fp32"`.
"""

import pytest
import torch

from model.loading import add_lora, resolve_precision
from model.training.batches import codebook_delays, collate, supervised_loss, token_logprobs
from model.training.config import DEFAULT_TARGET_MODULES
from model.training.trainer import set_training
from model_testing import tiny_examples

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def stub_hardware(monkeypatch, *, cuda_bf16: bool = False, avx512_bf16: bool = False, amx: bool = False) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: cuda_bf16)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)


@pytest.mark.parametrize("device, hardware, expected", [
    (CUDA, dict(cuda_bf16=True), "bf16"),
    (CUDA, dict(cuda_bf16=False, avx512_bf16=True), "fp32"),  # the host CPU does not matter for a GPU run
    (CPU, dict(avx512_bf16=True), "bf16"),
    (CPU, dict(amx=True), "bf16"),
    (CPU, dict(cuda_bf16=True), "fp32"),  # an AVX2-only CPU emulates bf16, ~100x slower than fp32
    (CPU, dict(), "fp32"),
])
def test_auto_picks_bf16_only_where_it_is_native(monkeypatch, device, hardware, expected):
    stub_hardware(monkeypatch, **hardware)
    assert resolve_precision("auto", device) == expected


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("device", [CPU, CUDA])
def test_an_explicit_precision_is_kept_whatever_the_hardware(monkeypatch, precision, device):
    stub_hardware(monkeypatch, cuda_bf16=precision == "fp32", avx512_bf16=precision == "fp32")
    assert resolve_precision(precision, device) == precision


def lora_gradients(model: torch.nn.Module, batch, autocast: bool) -> tuple[float, torch.Tensor]:
    """Loss and the flattened LoRA gradients of one supervised step, as the trainer computes them."""
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logprobs, valid = token_logprobs(model, batch, 2048, 2048)
    loss = supervised_loss(logprobs, valid)
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])


def test_a_bf16_step_agrees_with_fp32(tiny_model, supervised_jsonl, cache_dir):
    # On a CPU without native bf16 this runs emulated: slow per FLOP, but the tiny model's step is
    # small enough (seconds), so it runs on every machine.
    model, _, examples = tiny_examples(tiny_model, supervised_jsonl, "supervised", cache_dir)
    torch.manual_seed(0)
    model = add_lora(model, 4, 8, 0.0, list(DEFAULT_TARGET_MODULES))
    for name, parameter in model.named_parameters():  # LoRA B starts at zero; make both factors matter
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02)
    set_training(model, True)
    batch = collate(examples[:3], codebook_delays(4, 1), 2048)

    loss32, grads32 = lora_gradients(model, batch, autocast=False)
    loss16, grads16 = lora_gradients(model, batch, autocast=True)

    # bf16 keeps 8 bits of mantissa (relative rounding 2^-9 ≈ 0.002 per operation); over two decoder
    # layers the loss stays within 1 % and the gradients within 1 % in norm and direction.
    assert loss16 == pytest.approx(loss32, rel=1e-2)
    cosine = torch.nn.functional.cosine_similarity(grads32, grads16, dim=0).item()
    assert cosine > 0.999, cosine
    assert grads16.norm().item() == pytest.approx(grads32.norm().item(), rel=1e-2)
    # And bf16 really ran: its numbers are not the fp32 ones.
    assert loss16 != loss32
