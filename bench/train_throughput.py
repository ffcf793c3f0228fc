"""Training throughput of model/ on a random MusicGen of musicgen-small's shape (no weights needed).

    python bench/train_throughput.py [--seconds 2] [--batch-size 2] [--steps 3] [--threads N]
        [--device auto|cpu|cuda] [--precision auto|fp32|bf16] [--compile auto|on|off]
        [--activation-checkpointing] [--lora-dropout 0.05] [--recipes ours recompute]
        [--parts throughput dpo] [--dpo-seconds 2 ...] [--dpo-pairs 1] [--save-model DIR]

Measures, on one machine and one process (DPO memory: one subprocess per variant):
  1. dense matmul throughput in fp32 and bf16: the ceiling a step is judged against;
  2. samples/s of our supervised step as the trainer runs it (EnCodec codes and text states
     precomputed once; under bf16 the frozen decoder weights in bf16 and no peft input casts; fused
     AdamW on CUDA; compile and activation checkpointing as the flags say) versus the recompute
     recipe (the text encoder and EnCodec run on every step, on a plain model: fp32 frozen weights,
     peft's default casts, plain AdamW, no compile), both under the same precision;
  3. FLOPs of the step, counted by torch's FlopCounterMode on what actually runs (frozen weights get
     no weight gradients), and the achieved FLOP/s of ours as a fraction of the matmul ceiling;
  4. peak memory of one DPO step on --dpo-pairs pairs of each --dpo-seconds clip length: ours (the
     reference log-probabilities scored once before training, as the trainer does, so the step is
     the policy's forward and backward), ours with activation checkpointing, and the two-model recipe
     (a second full copy of the model as reference, run on every step); the peak is tracked from
     just before the step (the random init's own peak is not counted).
Prints one JSON object on stdout; progress on stderr.
"""

import argparse
import copy
import gc
import json
import os
import platform
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration, T5Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model.loading import add_lora, resolve_compile, resolve_device, resolve_precision, without_dropout  # noqa: E402
from model.training.batches import (  # noqa: E402
    codebook_delays,
    collate,
    dpo_loss,
    reference_logprobs,
    supervised_loss,
    token_logprobs,
)
from model.training.config import TrainingConfig  # noqa: E402
from model.training.features import Example  # noqa: E402
from model.tiny import build_tiny_model  # noqa: E402
from model.training.trainer import set_speed_options, set_training, store_frozen_weights  # noqa: E402

PAD = START = 2048
TEXT_TOKENS = 12  # a typical prompt, e.g. "lo-fi hip hop beat with warm piano and vinyl crackle"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def musicgen_small_config() -> MusicgenConfig:
    """facebook/musicgen-small's architecture: T5-base text encoder, 32 kHz EnCodec, 24-layer decoder."""
    text = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
                    relative_attention_num_buckets=32, feed_forward_proj="relu")
    audio = EncodecConfig(sampling_rate=32_000, audio_channels=1, codebook_size=2048, target_bandwidths=[2.2],
                          upsampling_ratios=[8, 5, 4, 4], num_filters=64, hidden_size=128, num_lstm_layers=2,
                          normalize=False, use_causal_conv=False, chunk_length_s=None, compress=2,
                          num_residual_layers=1, kernel_size=7, last_kernel_size=7, residual_kernel_size=3)
    decoder = MusicgenDecoderConfig(vocab_size=2048, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                    ffn_dim=4096, num_codebooks=4, max_position_embeddings=2048, dropout=0.1,
                                    pad_token_id=PAD, bos_token_id=PAD, decoder_start_token_id=START)
    config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict())
    config.decoder_start_token_id = config.pad_token_id = START
    return config


def build_model(device: torch.device) -> MusicgenForConditionalGeneration:
    torch.manual_seed(0)
    with device:  # initialised where it runs: on a GPU in a second, not 20 s on the CPU
        model = MusicgenForConditionalGeneration(without_dropout(musicgen_small_config()))
    model.requires_grad_(False)
    return model.eval()  # as load_base_model returns it


def timed(work, device: torch.device) -> dict[str, float]:
    """Wall-clock and process CPU seconds of work(). On a shared machine the wall clock also counts
    the time other processes hold the cores; with one thread, CPU seconds count only our work."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    synchronize(device)
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def matmul_gflops(dtype: torch.dtype, device: torch.device, size: int, repeats: int) -> dict[str, float]:
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    a @ b

    def work() -> None:
        for _ in range(repeats):
            a @ b

    return {clock: 2 * size**3 * repeats / seconds / 1e9 for clock, seconds in timed(work, device).items()}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_inputs(batch_size: int, seconds: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random audio (B, 1, samples) and random prompt token ids (B, TEXT_TOKENS)."""
    generator = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(batch_size, 1, int(seconds * 32_000), generator=generator)
    ids = torch.randint(3, 32000, (batch_size, TEXT_TOKENS), generator=generator)
    ids[:, -1] = 1  # </s>
    return audio.to(device), ids.to(device)


@torch.no_grad()
def encode(model: MusicgenForConditionalGeneration, audio: torch.Tensor, ids: torch.Tensor) -> list[Example]:
    """What our trainer computes once per dataset (model.training.features), here for one batch."""
    text = model.text_encoder(input_ids=ids).last_hidden_state.float().cpu()
    codes = model.audio_encoder.encode(audio).audio_codes[0].cpu()  # (B, K, frames)
    frames = codes.shape[2]
    return [Example(row=b, text=text[b], codes=(codes[b],), start=0, frames=frames) for b in range(audio.shape[0])]


def with_lora(model: MusicgenForConditionalGeneration, dropout: float = TrainingConfig().lora_dropout):
    """The default LoRA (its dropout as given), nothing else: the recompute and two-model recipes."""
    config = TrainingConfig()
    return add_lora(model, config.lora_r, config.lora_alpha, dropout, config.target_modules)


def as_trainer_runs_it(model: MusicgenForConditionalGeneration, precision: str, checkpointing: bool, compile: bool,
                       lora_dropout: float = TrainingConfig().lora_dropout):
    """The default LoRA with the trainer's dtype handling and speed options."""
    store_frozen_weights(model, precision)
    model = with_lora(model, lora_dropout)
    set_speed_options(model, precision, checkpointing, compile)
    return model


def supervised_step(model, optimizer, examples: list[Example], device: torch.device, autocast) -> float:
    """The trainer's supervised step (model.training.trainer), without its loop plumbing."""
    set_training(model, True)
    batch = collate(examples, codebook_delays(4, 1), PAD).to(device)
    with autocast:
        logprobs, valid = token_logprobs(model, batch, PAD, START)
    loss = supervised_loss(logprobs, valid)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def time_interleaved(recipes: dict, steps: int, device: torch.device) -> tuple[dict, dict]:
    """Median wall and CPU seconds per step of each recipe, after one warm-up step each (which
    includes compiling, when compiled), and the warm-up's wall seconds. The recipes take turns, so
    a machine whose load drifts (a shared CI box) slows them alike."""
    times, warmup = {name: [] for name in recipes}, {}
    for turn in range(steps + 1):
        for name, step in recipes.items():
            seconds = timed(step, device)
            log(f"{name}: {seconds['wall']:.2f} s wall, {seconds['cpu']:.2f} s CPU")
            if turn > 0:
                times[name].append(seconds)
            else:
                warmup[name] = round(seconds["wall"], 3)
    medians = {name: {clock: sorted(t[clock] for t in ts)[len(ts) // 2] for clock in ("wall", "cpu")}
               for name, ts in times.items()}
    return medians, warmup


def throughput(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    size = 4096 if device.type == "cuda" else 1024
    # CPU time only measures our work when one thread does it (idle OpenMP threads spin on CPU time).
    clocks = ("wall", "cpu") if device.type == "cpu" and torch.get_num_threads() == 1 else ("wall",)

    def measure_ceiling() -> dict[str, dict[str, float]]:
        return {"fp32": matmul_gflops(torch.float32, device, size, 10),
                "bf16": matmul_gflops(torch.bfloat16, device, size, 10 if device.type == "cuda" else 2)}

    ceiling = measure_ceiling()
    log(f"matmul ceiling GFLOP/s: {ceiling}")

    log("building a random MusicGen of musicgen-small's shape (and one for the recompute recipe)")
    model = build_model(device)
    total = sum(p.numel() for p in model.parameters())
    audio, ids = make_inputs(args.batch_size, args.seconds, device)
    encode(model, audio, ids)  # warm-up
    encoders = timed(lambda: encode(model, audio, ids), device)
    examples = encode(model, audio, ids)
    log(f"encoders: {encoders} s per batch")
    model = as_trainer_runs_it(model, precision, checkpointing=False, compile=False, lora_dropout=args.lora_dropout)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                                  fused=device.type == "cuda")
    # FLOPs of the step's maths: counted before compiling, and without checkpointing's recomputation.
    with FlopCounterMode(display=False) as counter:
        supervised_step(model, optimizer, examples, device, autocast)
    flops = counter.get_total_flops()
    compile = resolve_compile(args.compile, device)
    set_speed_options(model, precision, args.activation_checkpointing, compile)
    recipes = {"ours": lambda: supervised_step(model, optimizer, examples, device, autocast)}
    if "recompute" in args.recipes:
        plain = with_lora(build_model(device))
        plain_optimizer = torch.optim.AdamW([p for p in plain.parameters() if p.requires_grad], lr=1e-4)
        recipes["recompute"] = lambda: supervised_step(plain, plain_optimizer, encode(plain, audio, ids), device,
                                                       autocast)

    log(f"timing {' and '.join(recipes)}, {args.steps} steps each after a warm-up")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    medians, warmup = time_interleaved(recipes, args.steps, device)
    # The ceiling is what the machine can do: the better of the measurements before and after.
    again = measure_ceiling()
    ceiling = {p: {c: max(v[c], again[p][c]) for c in v} for p, v in ceiling.items()}

    result = {
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
        platform.processor() or platform.machine(), "precision": precision, "threads": torch.get_num_threads(),
        "compile": compile, "activation_checkpointing": args.activation_checkpointing, "lora_dropout": args.lora_dropout,
        "warmup_seconds": warmup,
        "parameters": total, "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "batch_size": args.batch_size, "clip_seconds": args.seconds,
        "decoder_positions": examples[0].codes[0].shape[1] + 3,
        "step_gflop": round(flops / 1e9, 1),
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    for clock in clocks:
        achieved = flops / medians["ours"][clock] / 1e9
        result[clock] = {
            "matmul_gflops": {p: round(v[clock], 1) for p, v in ceiling.items()},
            "encoders_seconds_per_batch": round(encoders[clock], 3),
            **{name: {"seconds_per_step": round(m[clock], 3), "samples_per_second": round(args.batch_size / m[clock], 4)}
               for name, m in medians.items()},
            "achieved_gflops": round(achieved, 1),
            "fraction_of_matmul_ceiling": round(achieved / ceiling[precision][clock], 3),
        }
        if "recompute" in medians:
            result[clock]["speedup"] = round(medians["recompute"][clock] / medians["ours"][clock], 3)
    return result


def reset_peak_memory(device: torch.device) -> None:
    """Start peak tracking afresh, so building the model (whose random init peaks high) is not counted."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM, the peak resident set size


def memory_bytes(device: torch.device, peak: bool) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() if peak else torch.cuda.memory_allocated()
    field = "VmHWM:" if peak else "VmRSS:"
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1]) * 1024  # kB


DPO_VARIANTS = ("ours", "ours-checkpointing", "two-model")


def dpo_memory(args: argparse.Namespace) -> dict:
    """One DPO step on --dpo-pairs pairs of --seconds clips, in a fresh process, as `args.dpo_memory`
    (one of DPO_VARIANTS) runs it."""
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    model = build_model(device)
    audio, ids = make_inputs(2 * args.dpo_pairs, args.seconds, device)
    clips = encode(model, audio, ids)
    pairs = [Example(row=i, text=clips[2 * i].text, codes=(clips[2 * i].codes[0], clips[2 * i + 1].codes[0]),
                     start=0, frames=clips[0].frames) for i in range(args.dpo_pairs)]
    delays = codebook_delays(4, 1)
    if args.dpo_memory == "two-model":
        reference_model = copy.deepcopy(model)
        model = with_lora(model)
    else:
        model = as_trainer_runs_it(model, precision, args.dpo_memory == "ours-checkpointing", compile=False)
        cached = reference_logprobs(model, pairs, delays, PAD, START, args.dpo_pairs, autocast).to(device)
    gc.collect()
    before = memory_bytes(device, peak=False)
    reset_peak_memory(device)

    started = time.perf_counter()
    set_training(model, True, lora_dropout=False)
    batch = collate(pairs, delays, PAD).to(device)
    with autocast:
        logprobs, _ = token_logprobs(model, batch, PAD, START)
    if args.dpo_memory == "two-model":
        with torch.no_grad(), autocast:
            reference = token_logprobs(reference_model.eval(), batch, PAD, START)[0].sum((1, 2))
    else:
        reference = torch.cat([cached[:, 0], cached[:, 1]])
    loss, _ = dpo_loss(logprobs.sum((1, 2)), reference, beta=TrainingConfig().dpo_beta)
    loss.backward()
    synchronize(device)
    return {"variant": args.dpo_memory, "loss": loss.item(), "bytes_before_step": before,
            "peak_bytes": memory_bytes(device, peak=True), "step_seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per recipe (after one warm-up)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's); 1 also reports CPU time")
    parser.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                        help="torch.compile our decoder ('auto': on CUDA, as the trainer)")
    parser.add_argument("--activation-checkpointing", action="store_true", help="in our supervised step")
    parser.add_argument("--lora-dropout", type=float, default=TrainingConfig().lora_dropout,
                        help="LoRA dropout of our supervised step (0: none, and none of its copies)")
    parser.add_argument("--parts", nargs="+", choices=["throughput", "dpo"], default=["throughput", "dpo"])
    parser.add_argument("--recipes", nargs="+", choices=["ours", "recompute"], default=["ours", "recompute"],
                        help="throughput: time ours alone, or also the recompute recipe")
    parser.add_argument("--save-model", type=Path, metavar="DIR",
                        help="only write a random MusicGen of musicgen-small's shape (and a processor) to DIR")
    parser.add_argument("--dpo-seconds", type=float, nargs="+", help="DPO clip lengths (default: --seconds)")
    parser.add_argument("--dpo-pairs", type=int, default=1, help="pairs in the DPO step")
    parser.add_argument("--dpo-memory", choices=DPO_VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dpo_memory:  # the child process of the memory comparison
        print(json.dumps(dpo_memory(args)))
        return
    if args.save_model:  # a base model for the training command line: the tiny model's processor, this shape
        build_tiny_model(args.save_model)
        build_model(torch.device("cpu")).save_pretrained(args.save_model)
        print(args.save_model)
        return

    result = {"command": " ".join(sys.argv), "load_average": os.getloadavg()}
    if "throughput" in args.parts:
        result.update(throughput(args))
    if "dpo" in args.parts:
        result["dpo_memory"] = {}
        for seconds in args.dpo_seconds or [args.seconds]:
            figures = {}
            for variant in DPO_VARIANTS:
                log(f"DPO peak memory, {args.dpo_pairs} pair(s) of {seconds} s, {variant} (subprocess)")
                child = [sys.executable, __file__, "--dpo-memory", variant, "--seconds", str(seconds),
                         "--dpo-pairs", str(args.dpo_pairs), "--device", args.device, "--precision", args.precision,
                         "--threads", str(torch.get_num_threads())]
                done = subprocess.run(child, capture_output=True, text=True)
                if done.returncode != 0:  # e.g. out of memory: keep the other variants' figures
                    figures[variant] = {"error": done.stderr.strip().splitlines()[-1:]}
                    continue
                measured = json.loads(done.stdout)
                figures[variant] = {"peak_gib": round(measured["peak_bytes"] / 2**30, 2),
                                    "before_step_gib": round(measured["bytes_before_step"] / 2**30, 2),
                                    "step_seconds": round(measured["step_seconds"], 2),
                                    "step0_loss": measured["loss"]}
            peak = {v: f.get("peak_gib") for v, f in figures.items()}
            if all(peak.values()):
                figures["ours_over_two_model"] = round(peak["ours"] / peak["two-model"], 3)
                figures["ours_checkpointing_over_two_model"] = round(peak["ours-checkpointing"] / peak["two-model"], 3)
            result["dpo_memory"][f"{seconds:g} s"] = figures
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
