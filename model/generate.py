"""Generate audio from a text prompt with a MusicGen, with or without a LoRA adapter.

    python -m model.generate --prompt "slow jazz piano" [--adapter DIR] [--base-model ID_OR_PATH]
        [--seconds S] [--seed N] [--guidance X] [--device auto|cpu|cuda] --out F.wav

Exit codes: 0 written, 2 bad input (base model, adapter, output path).
"""

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from transformers import MusicgenForConditionalGeneration, MusicgenProcessor

from model.errors import InputError
from model.loading import load_adapter, load_base_model, resolve_device

DEFAULT_BASE_MODEL = "facebook/musicgen-small"


def load_generator(
    base_model: str = DEFAULT_BASE_MODEL, adapter: Path | None = None, device: str = "auto"
) -> tuple[torch.nn.Module, MusicgenProcessor]:
    """The model (with the adapter on it, checked key for key) and its processor, ready for `generate`."""
    model, processor = load_base_model(base_model, resolve_device(device))
    if adapter is not None:
        model = load_adapter(model, adapter)
    return model.eval(), processor


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    processor: MusicgenProcessor,
    prompt: str,
    seconds: float = 8.0,
    seed: int = 0,
    guidance: float = 3.0,
) -> tuple[np.ndarray, int]:
    """Sample `seconds` of audio for `prompt`; return (channels, samples) float32 and the sample rate.
    The same seed, model and prompt give the same audio."""
    base: MusicgenForConditionalGeneration = model.get_base_model() if hasattr(model, "get_base_model") else model
    frame_rate = base.config.audio_encoder.frame_rate
    # The delay pattern spends its first codebooks-1 steps (per channel) before frame 0 is complete.
    delay = base.config.decoder.num_codebooks // base.config.decoder.audio_channels - 1
    inputs = processor(text=[prompt], padding=True, return_tensors="pt").to(base.device)
    torch.manual_seed(seed)
    audio = model.generate(
        **inputs, do_sample=True, guidance_scale=guidance, max_new_tokens=max(1, round(seconds * frame_rate)) + delay
    )
    return audio[0].float().cpu().numpy(), base.config.audio_encoder.sampling_rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--adapter", type=Path, help="adapter folder written by training (DIR/adapter)")
    parser.add_argument("--base-model", default=DEFAULT_BASE_MODEL, help="hub id or local folder")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (1: off)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--out", type=Path, required=True, help="audio file to write (.wav, .flac, .ogg)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        if not 0 < args.seconds <= 300:
            raise InputError(f"--seconds {args.seconds}: must be in (0, 300]")
        model, processor = load_generator(args.base_model, args.adapter, args.device)
        audio, rate = generate(model, processor, args.prompt, args.seconds, args.seed, args.guidance)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(args.out, audio.T, rate)
    except InputError as error:
        logging.error("%s", error)
        return 2
    logging.info("wrote %s (%.2f s at %d Hz)", args.out, audio.shape[1] / rate, rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
