"""Loading MusicGen, its processor and LoRA adapters; choosing device and precision.

Training and generation share this code, so an adapter is always created, saved and loaded on the
whole `MusicgenForConditionalGeneration`: the key prefixes then agree. An adapter saved from
`model.decoder` and loaded onto the whole model has other prefixes; peft only warns about the
missing keys, and the adapter silently does nothing.
"""

from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import get_peft_model_state_dict
from safetensors import safe_open
from transformers import AutoProcessor, MusicgenConfig, MusicgenForConditionalGeneration, MusicgenProcessor

from model.errors import AdapterMismatchError, InputError

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was requested but no CUDA GPU is available (use --device cpu or auto)")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' picks bf16 where bf16 matmul is native: CUDA GPUs that support it and CPUs with
    AVX512-BF16 or AMX. Elsewhere bf16 is emulated and far slower than fp32 (measured 0.9 vs
    68 GFLOP/s on an AVX2-only EPYC), so fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16" if native else "fp32"


def resolve_compile(compile: str, device: torch.device) -> bool:
    """'auto' compiles on CUDA GPUs; on CPUs compiling takes longer than a CPU run of this size gains."""
    if compile == "auto":
        return device.type == "cuda"
    return compile == "on"


def without_dropout(config: MusicgenConfig) -> MusicgenConfig:
    """`config` with every dropout probability of the decoder and the text encoder set to 0."""
    for field in ("dropout", "attention_dropout", "activation_dropout", "layerdrop"):
        setattr(config.decoder, field, 0.0)
    config.text_encoder.dropout_rate = 0.0
    return config


def load_base_model(name: str, device: torch.device) -> tuple[MusicgenForConditionalGeneration, MusicgenProcessor]:
    """Load a MusicGen and its processor from a hub id or a local save_pretrained folder, frozen,
    in eval mode, with fp32 weights whatever dtype it was saved in (an fp16 save would otherwise
    meet fp32 LoRA weights and inputs mid-step).

    Its own dropout probabilities are set to 0: the frozen model's dropout would only add noise,
    and in DPO make the policy and the reference forward differ at step 0. With them at 0, train
    mode (which transformers needs for activation checkpointing) changes nothing but LoRA's dropout.
    """
    looks_local = name.startswith(("/", "./", "../", "~")) or Path(name).exists()
    if looks_local and not Path(name).expanduser().is_dir():
        raise InputError(f"base model folder {name!r} does not exist")
    source = str(Path(name).expanduser()) if looks_local else name
    try:
        config = without_dropout(MusicgenConfig.from_pretrained(source))
        model = MusicgenForConditionalGeneration.from_pretrained(source, config=config, dtype=torch.float32)
        processor = AutoProcessor.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot load base model {name!r}: {error}") from None
    model.requires_grad_(False)
    return model.eval().to(device), processor


def add_lora(
    model: MusicgenForConditionalGeneration, r: int, alpha: int, dropout: float, target_modules: list[str]
) -> PeftModel:
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules)
    try:
        return get_peft_model(model, config)
    except ValueError as error:  # peft's "Target modules ... not found in the base model"
        raise InputError(f"LoRA target_modules {target_modules}: {error}") from None


def load_adapter(model: MusicgenForConditionalGeneration, adapter_dir: Path, trainable: bool = False) -> PeftModel:
    """Put the adapter saved in `adapter_dir` onto `model`, checked by `check_adapter_keys`."""
    adapter_dir = Path(adapter_dir)
    adapter_weights(adapter_dir)
    peft_model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=trainable)
    check_adapter_keys(peft_model, adapter_dir, "default")
    return peft_model


def adapter_weights(adapter_dir: Path) -> Path:
    """The adapter folder's weights file; InputError if there is none."""
    weights = Path(adapter_dir) / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise InputError(f"{adapter_dir}: not an adapter folder (no {ADAPTER_WEIGHTS})")
    return weights


def check_adapter_keys(peft_model: PeftModel, adapter_dir: Path, adapter_name: str) -> None:
    """Raise AdapterMismatchError if any key saved in `adapter_dir` has no LoRA module to go to, or any
    LoRA module created for it got no saved weights: peft only warns about either, and the adapter
    would then not do what it was trained to do."""
    with safe_open(adapter_weights(adapter_dir), framework="pt") as file:
        saved = set(file.keys())
    expected = set(get_peft_model_state_dict(peft_model, adapter_name=adapter_name).keys())
    if saved != expected:
        missing, unexpected = sorted(expected - saved), sorted(saved - expected)
        raise AdapterMismatchError(
            f"{adapter_dir}: adapter does not fit this model: {len(missing)} missing keys "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:2]})"
        )
