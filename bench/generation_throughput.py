"""Generation throughput of model.generate.MusicGenerator, and adapter loading against base-model loading.

    python bench/generation_throughput.py [--shape tiny|small] [--device auto|cpu|cuda] [--seconds S]
        [--batch-sizes 1,8] [--repeats 3] [--variants fp32,bf16+static+compile] [--threads N]

The model is random (no weights needed): the tiny test model, or musicgen-small's shape (588 M
parameters, bench/train_throughput.py's config), saved to a temporary folder and loaded from there
as a hub model would be; two random LoRA adapters of the training defaults (r 16 on q/k/v/out_proj,
fc1, fc2) are saved next to it. For each variant (precision, plus `static` for the static KV cache,
`compile` for torch.compile of the forward and `merge` to merge the adapter into the weights for each
request; a lever left out is off), in one run:
  - base_load_seconds: constructing a MusicGenerator (load the base model from disk, move, cast);
  - adapter_load_seconds: warming a new adapter onto the held model (the cost of switching to an
    adapter that is not held; switching between held ones is peft's set_adapter, no loading);
  - per batch size, base model and adapter: one warm-up request (compilation happens there), then
    `--repeats` timed requests of `--seconds` per sample: realtime_factor = seconds of audio made /
    median wall seconds.
Prints one JSON object per line on stdout (an `error` line where a variant fails); progress on stderr.
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model.generate import GenerationRequest, MusicGenerator  # noqa: E402
from model.tiny import build_tiny_model  # noqa: E402
from model.training.config import TrainingConfig  # noqa: E402
from train_throughput import musicgen_small_config  # noqa: E402
from transformers import AutoProcessor, MusicgenForConditionalGeneration  # noqa: E402

PROMPT = "lo-fi hip hop beat with warm piano and vinyl crackle"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def write_model(shape: str, folder: Path) -> Path:
    tiny = build_tiny_model(folder / "tiny")
    if shape == "tiny":
        return tiny
    torch.manual_seed(0)
    model = MusicgenForConditionalGeneration(musicgen_small_config())
    model.generation_config.update(do_sample=True, top_k=250, guidance_scale=3.0)
    small = folder / "small"
    model.save_pretrained(small)
    AutoProcessor.from_pretrained(tiny).save_pretrained(small)  # the tiny vocabulary's ids fit T5-base's
    return small


def write_adapter(base: Path, folder: Path, seed: int) -> Path:
    defaults = TrainingConfig()
    torch.manual_seed(seed)
    model = MusicgenForConditionalGeneration.from_pretrained(base)
    config = LoraConfig(r=defaults.lora_r, lora_alpha=defaults.lora_alpha, target_modules=defaults.target_modules,
                        init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(folder)
    return folder


def parse_variant(text: str) -> dict:
    precision, *levers = text.split("+")
    if precision not in ("fp32", "bf16") or not set(levers) <= {"static", "compile", "merge"}:
        raise SystemExit(f"--variants: {text!r} is not PRECISION[+static][+compile][+merge] with PRECISION fp32 or bf16")
    return {"precision": precision, "static_cache": "static" in levers, "compile": "compile" in levers,
            "merge_adapter": "merge" in levers}


def run_variant(name: str, base: Path, adapters: list[Path], args: argparse.Namespace) -> None:
    options = parse_variant(name)
    started = time.perf_counter()
    generator = MusicGenerator(str(base), device=args.device, max_adapters=len(adapters), **options)
    base_load = time.perf_counter() - started
    adapter_loads = []
    for index, adapter in enumerate(adapters):
        started = time.perf_counter()
        generator.warm(f"adapter-{index}", adapter)
        adapter_loads.append(time.perf_counter() - started)
    emit({"kind": "loading", "variant": name, "base_load_seconds": round(base_load, 3),
          "adapter_load_seconds": [round(s, 3) for s in adapter_loads],
          "base_over_adapter": round(base_load / min(adapter_loads), 1)})
    for batch in args.batch_sizes:
        for adapter_id in (None, "adapter-0"):
            request = GenerationRequest(PROMPT, adapter_id=adapter_id, duration_seconds=args.seconds,
                                        num_samples=batch, seed=1)
            log(f"{name}: batch {batch}, adapter {adapter_id}: warm-up")
            generator.generate(request)
            if generator.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            log(f"{name}: batch {batch}, adapter {adapter_id}: {args.repeats} timed")
            walls = sorted(generator.generate(request)[0].seconds_taken for _ in range(args.repeats))
            wall = walls[len(walls) // 2]
            record = {"kind": "throughput", "variant": name, "batch": batch, "adapter": adapter_id is not None,
                      "audio_seconds_per_sample": args.seconds, "wall_seconds": [round(w, 3) for w in walls],
                      "realtime_factor": round(batch * args.seconds / wall, 3)}
            if generator.device.type == "cuda":
                record["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            emit(record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["tiny", "small"], default="tiny")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per sample")
    parser.add_argument("--batch-sizes", type=lambda s: [int(b) for b in s.split(",")], default=[1, 8])
    parser.add_argument("--variants", type=lambda s: s.split(","), default=None,
                        help="comma-separated PRECISION[+static][+compile][+merge]; default: fp32 on a CPU, "
                             "fp32,bf16,bf16+static+compile+merge on a GPU")
    parser.add_argument("--repeats", type=int, default=3, help="timed requests per row (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    variants = args.variants or (["fp32", "bf16", "bf16+static+compile+merge"] if cuda else ["fp32"])
    emit({"kind": "machine", "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
          "avx512_bf16": torch.cpu._is_avx512_bf16_supported(), "torch": torch.__version__,
          "transformers": transformers.__version__, "threads": torch.get_num_threads(), "shape": args.shape})
    with tempfile.TemporaryDirectory(prefix="cadenza-generation-bench-") as tmp:
        log(f"writing a random {args.shape} model and two adapters")
        base = write_model(args.shape, Path(tmp))
        adapters = [write_adapter(base, Path(tmp) / f"adapter-{i}", seed=i) for i in range(2)]
        for name in variants:
            try:
                run_variant(name, base, adapters, args)
            except Exception as error:  # one failing lever must not lose the other variants' figures
                emit({"kind": "error", "variant": name, "error": f"{type(error).__name__}: {error}"})
            if cuda:
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
