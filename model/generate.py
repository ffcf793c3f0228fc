"""Generate audio from a text prompt with a MusicGen, with or without a LoRA adapter.

    python -m model.generate --prompt "slow jazz piano" [--adapter DIR] [--base-model ID_OR_PATH]
        [--seconds S] [--seed N] [--num-samples N] [--guidance X] [--temperature X] [--top-k N]
        [--top-p X] [--device auto|cpu|cuda] [--precision auto|fp32|bf16] --out F.wav|F.flac

With --num-samples N > 1 the samples go to F-0.wav … F-(N-1).wav.
Exit codes: 0 written, 2 bad input (request, base model, adapter, output path).
"""

import argparse
import logging
import math
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer

from model.decoding import Sampling, decoding_steps, sample_audio
from model.errors import InputError
from model.loading import adapter_weights, check_adapter_keys, load_base_model, resolve_device, resolve_precision

DEFAULT_BASE_MODEL = "facebook/musicgen-small"
MAX_SAMPLES = 8
MAX_DURATION_SECONDS = 300.0
AUDIO_SUFFIXES = (".wav", ".flac")


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate. `adapter_id` None is the base model; the adapter must have been warmed.
    Defaults are musicgen-small's. Bad values raise InputError naming the field."""

    prompt: str
    adapter_id: str | None = None
    duration_seconds: float = 8.0
    seed: int = 0
    num_samples: int = 1
    guidance_scale: float = 3.0  # classifier-free guidance; 1 turns it off
    temperature: float = 1.0
    top_k: int = 250  # 0 turns it off
    top_p: float = 1.0  # 1 turns it off

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            problems.append("prompt: must be non-empty text")
        if not (isinstance(self.duration_seconds, (int, float)) and 0 < self.duration_seconds <= MAX_DURATION_SECONDS):
            problems.append(f"duration_seconds {self.duration_seconds!r}: must be in (0, {MAX_DURATION_SECONDS:g}]")
        if not (_is_int(self.seed) and 0 <= self.seed < 2**63):
            problems.append(f"seed {self.seed!r}: must be an integer in [0, 2**63)")
        if not (_is_int(self.num_samples) and 1 <= self.num_samples <= MAX_SAMPLES):
            problems.append(f"num_samples {self.num_samples!r}: must be an integer from 1 to {MAX_SAMPLES}")
        if not (_is_finite(self.guidance_scale) and self.guidance_scale >= 1):
            problems.append(f"guidance_scale {self.guidance_scale!r}: must be >= 1 (1 turns guidance off)")
        if not (_is_finite(self.temperature) and self.temperature > 0):
            problems.append(f"temperature {self.temperature!r}: must be > 0")
        if not (_is_int(self.top_k) and self.top_k >= 0):
            problems.append(f"top_k {self.top_k!r}: must be an integer >= 0 (0 turns it off)")
        if not (_is_finite(self.top_p) and 0 < self.top_p <= 1):
            problems.append(f"top_p {self.top_p!r}: must be in (0, 1] (1 turns it off)")
        if problems:
            raise InputError("bad generation request: " + "; ".join(problems))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class GeneratedSample:
    audio: np.ndarray  # (channels, samples), float32
    sample_rate: int
    seconds_taken: float  # wall time of the one batched call that made all of the request's samples


class MusicGenerator:
    """One MusicGen base model, loaded once, and up to `max_adapters` LoRA adapters held on it by id
    (peft's multi-adapter support; the least recently used is deleted from the model when another
    is loaded). Safe to call from several threads: calls run one at a time.

    Speed options (None: the device's default): `static_cache` preallocates the KV cache so every
    decoding step has the same shapes, which `compile` (torch.compile of the model's forward, with
    CUDA graphs on a GPU) needs. Both default to on for CUDA and off on the CPU, where they gain
    nothing. `precision` 'bf16' casts the text encoder, decoder and adapters to bf16 (weights, not
    autocast: autocast would cast around every layer at every step); EnCodec stays fp32.
    With `compile`, the forward is compiled once per batch size, static cache length (durations are
    bucketed: model.decoding.STATIC_CACHE_BUCKET), adapter and base model (its guards see the active
    adapter); torch's recompile limit then falls back to the uncompiled forward.
    `merge_adapter` adds the request's adapter into the base weights for the duration of the request
    (see `merged`), instead of running its LoRA layers beside them at every step; on by default for
    CUDA, where the unmerged layers' small extra matmuls halved the speed, off on the CPU. Merged,
    every adapter runs the base model's compiled forward."""

    def __init__(
        self,
        base_model: str = DEFAULT_BASE_MODEL,
        device: str = "auto",
        precision: str = "auto",
        max_adapters: int = 8,
        static_cache: bool | None = None,
        compile: bool | None = None,
        merge_adapter: bool | None = None,
    ) -> None:
        if max_adapters < 1:
            raise InputError(f"max_adapters {max_adapters}: must be at least 1")
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        on_gpu = self.device.type == "cuda"
        self.static_cache = on_gpu if static_cache is None else static_cache
        self.compile = on_gpu if compile is None else compile
        self.merge_adapter = on_gpu if merge_adapter is None else merge_adapter
        if self.compile and not self.static_cache:
            raise InputError("compile needs static_cache: with a growing cache every step has new shapes")
        self.max_adapters = max_adapters
        self.model, self.processor = load_base_model(base_model, self.device)
        self.model.eval()
        if self.precision == "bf16":
            for part in (self.model.text_encoder, self.model.enc_to_dec_proj, self.model.decoder):
                part.to(torch.bfloat16)
        # CUDA graphs ("reduce-overhead") replay a whole decoding step as one launch: a step is
        # launch-bound on a GPU, not compute-bound.
        self._cuda_graphs = self.compile and on_gpu
        mode = "reduce-overhead" if self._cuda_graphs else "default"
        self._forward = torch.compile(self.model.forward, mode=mode, dynamic=False) if self.compile else self.model.forward
        self._peft: PeftModel | None = None
        self._adapters: OrderedDict[str, Path] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    @property
    def adapter_ids(self) -> list[str]:
        """The adapters held, least recently used first."""
        return list(self._adapters)

    @property
    def sample_rate(self) -> int:
        return self.model.config.audio_encoder.sampling_rate

    def warm(self, adapter_id: str, adapter_dir: Path) -> None:
        """Load the adapter saved in `adapter_dir` (PEFT format, as training writes it) under
        `adapter_id`, unless it is held already; either way it becomes the most recently used.
        Raises InputError if the folder holds no adapter, AdapterMismatchError if its keys do not
        fit this base model (the model is then left as it was)."""
        with self._lock:
            if adapter_id in self._adapters:
                self._adapters.move_to_end(adapter_id)
                return
            adapter_dir = Path(adapter_dir)
            adapter_weights(adapter_dir)
            # autocast_adapter_dtype=False keeps the adapter in the base model's dtype (peft would
            # upcast it to fp32 and cast every LoRA input back and forth at each step);
            # low_cpu_mem_usage skips initialising LoRA weights that the saved ones replace.
            if self._peft is None:
                peft_model = PeftModel.from_pretrained(
                    self.model, adapter_dir, adapter_name=adapter_id, autocast_adapter_dtype=False,
                    low_cpu_mem_usage=True)
            else:
                peft_model = self._peft
                peft_model.load_adapter(adapter_dir, adapter_name=adapter_id, autocast_adapter_dtype=False,
                                        low_cpu_mem_usage=True)
            try:
                check_adapter_keys(peft_model, adapter_dir, adapter_id)
            except InputError:
                if self._peft is None:
                    peft_model.unload()  # takes the LoRA layers out of self.model again
                else:
                    peft_model.delete_adapter(adapter_id)
                raise
            self._peft = peft_model
            self._adapters[adapter_id] = adapter_dir
            if len(self._adapters) > self.max_adapters:
                evicted, _ = self._adapters.popitem(last=False)
                self._peft.delete_adapter(evicted)

    def generate(
        self,
        request: GenerationRequest,
        should_stop: Callable[[], bool] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[GeneratedSample]:
        """The request's samples, made in one batched call. The same request (seed, adapter and all
        settings, num_samples included) gives the same audio. `should_stop` is checked before every
        decoding step: when it returns True, GenerationCancelled is raised. `on_progress(done, total)`
        is called after every decoding step. Raises InputError if the request's adapter is not held."""
        with self._lock:
            if request.adapter_id is not None and request.adapter_id not in self._adapters:
                raise InputError(f"adapter {request.adapter_id!r} is not loaded: warm it first")
            inputs = self.processor(text=[request.prompt] * request.num_samples, padding=True, return_tensors="pt")
            inputs = inputs.to(self.device)
            sampling = Sampling(request.guidance_scale, request.temperature, request.top_k, request.top_p)
            steps = decoding_steps(self.model, request.duration_seconds)
            generator = torch.Generator(device=self.device).manual_seed(request.seed)

            def run() -> torch.Tensor:
                return sample_audio(self.model, inputs["input_ids"], inputs["attention_mask"], steps, sampling,
                                    generator, self._forward, self.static_cache, should_stop, on_progress,
                                    self._cuda_graphs)

            started = time.perf_counter()
            if request.adapter_id is not None:
                self._adapters.move_to_end(request.adapter_id)
                self._peft.set_adapter(request.adapter_id)
                if self.merge_adapter:
                    with merged(self._peft, request.adapter_id):
                        audio = run()
                else:
                    audio = run()
            elif self._peft is not None:
                with self._peft.disable_adapter():
                    audio = run()
            else:
                audio = run()
            audio = audio.float().cpu().numpy()
            taken = time.perf_counter() - started
        return [GeneratedSample(sample, self.sample_rate, taken) for sample in audio]


@contextmanager
def merged(peft_model: PeftModel, adapter_id: str) -> Iterator[None]:
    """For the duration of the block, the adapter's LoRA product is added into the base weights it
    touches and every LoRA layer is switched off. The base weights are then copied back from exact
    copies kept meanwhile: subtracting the product again would not give them back bit for bit (in
    bf16 it drifts a little with every request)."""
    originals: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for module in peft_model.modules():
                if isinstance(module, LoraLayer) and adapter_id in module.lora_A:
                    weight = module.get_base_layer().weight
                    originals.append((weight, weight.clone()))
                    weight += module.get_delta_weight(adapter_id)
        with peft_model.disable_adapter():
            yield
    finally:
        with torch.no_grad():
            for weight, original in originals:
                weight.copy_(original)


def write_audio(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write (channels, samples) float audio as 16-bit WAV or FLAC. Values beyond ±1 are clipped here,
    so that they never wrap around to the opposite sign whatever libsndfile's own clipping setting."""
    path = Path(path)
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise InputError(f"{path}: audio files are written as {' or '.join(AUDIO_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(audio, -1.0, 1.0).T, sample_rate, subtype="PCM_16")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--adapter", type=Path, help="adapter folder written by training (DIR/adapter)")
    parser.add_argument("--base-model", default=DEFAULT_BASE_MODEL, help="hub id or local folder")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (1: off)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=250, help="0: off")
    parser.add_argument("--top-p", type=float, default=1.0, help="1: off")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument("--out", type=Path, required=True, help="audio file to write (.wav or .flac)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        if args.out.suffix.lower() not in AUDIO_SUFFIXES:
            raise InputError(f"--out {args.out}: must end in {' or '.join(AUDIO_SUFFIXES)}")
        request = GenerationRequest(
            prompt=args.prompt, adapter_id=None if args.adapter is None else "adapter",
            duration_seconds=args.seconds, seed=args.seed, num_samples=args.num_samples,
            guidance_scale=args.guidance, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
        generator = MusicGenerator(args.base_model, args.device, args.precision, max_adapters=1)
        if args.adapter is not None:
            generator.warm("adapter", args.adapter)
        samples = generator.generate(request)
        for index, sample in enumerate(samples):
            out = args.out if len(samples) == 1 else args.out.with_stem(f"{args.out.stem}-{index}")
            write_audio(out, sample.audio, sample.sample_rate)
            logging.info("wrote %s (%.2f s at %d Hz)", out, sample.audio.shape[1] / sample.sample_rate,
                         sample.sample_rate)
    except InputError as error:
        logging.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
