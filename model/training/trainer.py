"""The training loop, top to bottom: data, model, optimizer, then steps until done.

Progress goes to `emit` as the protocol's lines (the CLI prints them as JSON); `should_stop` is polled
after every optimizer step (the CLI sets it on SIGTERM).
"""

import logging
import math
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from peft import PeftModel
from transformers import MusicgenForConditionalGeneration
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from model.data import dataset_digest, file_sha256, read_rows
from model.errors import InputError, Stopped
from model.loading import add_lora, load_adapter, load_base_model, resolve_compile, resolve_device, resolve_precision
from model.training.batches import (
    DPO_REWARDS,
    codebook_delays,
    collate,
    dpo_loss,
    pack_by_frames,
    padded_frames,
    reference_logprobs,
    scoring_batches,
    supervised_loss,
    token_logprobs,
)
from model.training.checkpoint import Progress, read_checkpoint, restore_training_state, save_adapter, save_checkpoint
from model.training.config import TrainingConfig
from model.training.features import Example, FeatureCache, compute_features, epoch_windows
from model.training.parallel import start_processes, stop_processes, sum_gradients
from model.training.protocol import (
    AdapterLine, CheckpointLine, CompletedLine, Line, StartedLine, StepLine, ValidationLine,
)

log = logging.getLogger("cadenza.model")


class TrainingError(RuntimeError):
    """Training itself went wrong (e.g. the loss diverged): not the input's fault."""


def split_examples(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out whole dataset rows, so no window of a validation clip is trained on."""
    if fraction == 0:
        return examples, []
    rows = sorted({e.row for e in examples})
    held = max(1, round(fraction * len(rows)))
    if held >= len(rows):
        raise InputError(f"validation_split {fraction} leaves no rows to train on ({len(rows)} rows)")
    held_rows = set(np.random.default_rng([seed, 1]).permutation(rows)[:held].tolist())
    return [e for e in examples if e.row not in held_rows], [e for e in examples if e.row in held_rows]


def set_training(model: PeftModel, training: bool, lora_dropout: bool = True) -> None:
    """Train mode changes nothing in the base model (load_base_model sets its dropout to 0) but lets
    transformers checkpoint activations. LoRA's dropout runs only if `lora_dropout`: the DPO policy
    pass goes without it, as TRL's does, so that policy and reference differ by the adapter alone."""
    model.train(training)
    if training and not lora_dropout:
        for name, module in model.named_modules():
            if name.endswith("lora_dropout"):
                module.eval()


def store_frozen_weights(model: MusicgenForConditionalGeneration, precision: str) -> None:
    """Under bf16 the frozen decoder's weights are stored in bf16: autocast would otherwise cast each
    fp32 weight again on every forward. Call it before LoRA is added, so peft keeps LoRA's weights,
    which the optimizer updates, in fp32."""
    if precision == "bf16":
        model.decoder.to(torch.bfloat16)


def set_speed_options(model: PeftModel, precision: str, activation_checkpointing: bool, compile: bool) -> None:
    """Turn on activation checkpointing and `torch.compile` of the decoder's layers as asked.

    Under bf16, peft would cast each LoRA layer's input to its fp32 weights' dtype and autocast cast
    it straight back to bf16 for the matmul: skip peft's cast (for the whole run, so that a
    checkpointed layer's recomputation in the backward matches its forward)."""
    if precision == "bf16":
        for module in model.modules():
            if hasattr(module, "cast_input_dtype_enabled"):  # what peft.helpers.disable_input_dtype_casting sets
                module.cast_input_dtype_enabled = False
    decoder = model.get_base_model().decoder
    if activation_checkpointing:
        decoder.activation_checkpointing_enable({"use_reentrant": False})
    if compile:
        # Layer by layer: the decoder's loop breaks the graph at every layer anyway (layer drop draws
        # a Python random number), and the layers share their code, so one compiled layer serves
        # them all instead of one compilation per layer.
        for layer in decoder.model.decoder.layers:
            layer.compile()


def train(
    config: TrainingConfig,
    dataset: Path,
    output: Path,
    name: str,
    emit: Callable[[Line], None],
    cache_dir: Path,
    resume: Path | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> CompletedLine | None:
    """Train as `config` says; return the `completed` line (None in processes other than 0 of a
    data-parallel run, which write nothing: see parallel.py)."""
    started = time.perf_counter()
    processes, device = start_processes(resolve_device(config.device))
    precision = resolve_precision(config.precision, device)
    preference = config.dataset_type == "preference"

    # Inputs: every row and audio file is checked before anything heavy happens.
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{output}: cannot create the output folder ({error})") from None
    rows = read_rows(dataset, config.dataset_type)
    audio_sha256 = {path: file_sha256(path) for row in rows for path in row.audio}
    digest = dataset_digest(rows, audio_sha256)
    checkpoint = read_checkpoint(resume) if resume else None
    if checkpoint and checkpoint.dataset_digest != digest:
        raise InputError(f"{dataset}: not the dataset checkpoint {resume} was trained on (digest differs)")

    model, processor = load_base_model(config.base_model, device)
    log.info("encoding %d rows (cache: %s)", len(rows), cache_dir)
    if not processes.main:  # the others read what process 0 encodes and caches
        processes.barrier()
    examples = compute_features(
        model, processor, rows, audio_sha256, config.window_seconds, FeatureCache(cache_dir), should_stop
    )
    if processes.main:
        processes.barrier()
    train_set, validation_set = split_examples(examples, config.validation_split, config.seed)
    if config.batch_frames is not None:
        longest = max(padded_frames([e]) for e in examples)
        if longest > config.batch_frames:
            raise InputError(f"batch_frames={config.batch_frames} cannot hold the longest window ({longest} frames"
                             f"{', a pair counting twice' if preference else ''}): raise batch_frames to at least "
                             f"{longest}, or lower window_seconds")

    # Model: LoRA on the whole MusicGen (so the saved keys load back onto it), or the checkpoint's.
    store_frozen_weights(model, precision)
    torch.manual_seed(config.seed)
    if checkpoint:
        model = load_adapter(model, checkpoint.folder, trainable=True)
    else:
        model = add_lora(model, config.lora_r, config.lora_alpha, config.lora_dropout, config.target_modules)
    musicgen = model.get_base_model()
    decoder_config = musicgen.config.decoder
    delays = codebook_delays(decoder_config.num_codebooks, decoder_config.audio_channels)
    # Train on the start token generation starts from (hub configs keep it in the generation config).
    pad_id = decoder_config.pad_token_id
    start_id = musicgen.generation_config.decoder_start_token_id
    if start_id is None:
        start_id = decoder_config.bos_token_id
    parameters = [p for p in model.parameters() if p.requires_grad]

    # Batches: without batch_frames, every epoch draws an order of the examples and cuts it into
    # batch_size slices. With it, the training set is packed by length once (a window keeps its length
    # in every epoch, only its offset moves) and every epoch draws an order of those batches, so each
    # epoch has the same number of steps.
    packed = pack_by_frames(train_set, config.batch_frames) if config.batch_frames is not None else None
    validation_batches = scoring_batches(validation_set, config.batch_size, config.batch_frames)

    # Schedule: warmup then cosine, per optimizer step; the last group of an epoch may be short.
    batches_per_epoch = math.ceil(len(train_set) / config.batch_size) if packed is None else len(packed)
    steps_per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    total_steps = config.num_epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay,
                                  fused=device.type == "cuda")
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, total_steps)
    progress = Progress()
    if checkpoint:
        restore_training_state(checkpoint.folder, optimizer, scheduler)
        progress = checkpoint.progress

    emit(StartedLine(
        name=name, config=config, device=str(device), precision=precision, dataset=dataset,
        dataset_digest=digest, rows=len(rows), train_examples=len(train_set),
        validation_examples=len(validation_set), total_steps=total_steps, start_step=progress.step,
        resumed_from=resume, trainable_parameters=sum(p.numel() for p in parameters),
    ))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    if preference:  # the reference model is fixed, and so are preference windows: score them once
        log.info("scoring %d pairs under the reference model", len(train_set) + len(validation_set))
        train_references, validation_references = (
            reference_logprobs(model, subset, scoring_batches(subset, config.batch_size, config.batch_frames),
                               delays, pad_id, start_id, autocast)
            for subset in (train_set, validation_set))
    set_speed_options(model, precision, config.activation_checkpointing, resolve_compile(config.compile, device))

    def forward(chunk: list[Example], reference: torch.Tensor | None, training: bool, tokens: int | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one micro-batch (fp32), plus the DPO rewards given its pairs' `reference`
        log-probabilities. A supervised loss is divided by `tokens` (the optimizer step's coded
        positions; by default the batch's)."""
        # Condition dropout trains the null prompt in supervised runs; DPO keeps each pair's prompt,
        # under which its reference log-probabilities were computed.
        dropout = config.condition_dropout if training and not preference else 0.0
        batch = collate(chunk, delays, pad_id, dropout).to(device)
        set_training(model, training, lora_dropout=not preference)
        with autocast:
            logprobs, valid = token_logprobs(model, batch, pad_id, start_id)
        if not preference:
            return supervised_loss(logprobs, valid, tokens), {}
        reference = reference.to(device)
        return dpo_loss(logprobs.sum((1, 2)), torch.cat([reference[:, 0], reference[:, 1]]), config.dpo_beta)

    @torch.no_grad()
    def validate() -> float:
        """Mean loss per validation example (supervised: per example's tokens)."""
        total = 0.0
        for indices in validation_batches:
            reference = validation_references[indices] if preference else None
            total += forward([validation_set[i] for i in indices], reference, training=False)[0].item() * len(indices)
        return total / len(validation_set)

    def save() -> Path:
        path = output / "checkpoints" / f"step-{progress.step:06d}"
        if processes.main:
            save_checkpoint(output, model, optimizer, scheduler, progress, config, name, digest)
        log.info("step %d: checkpoint %s", progress.step, path)
        emit(CheckpointLine(step=progress.step, path=path))
        return path

    # Redraw a terminal's bar often; a captured stderr (the trainer service's run log) only every 30 s.
    bar = tqdm(total=total_steps, initial=progress.step, desc=name, unit="step", dynamic_ncols=True,
               mininterval=0.1 if sys.stderr.isatty() else 30, disable=not processes.main)
    windows_epoch, windows = None, train_set
    while progress.step < total_steps:
        if not progress.order:
            drawn = len(train_set) if packed is None else len(packed)
            progress.order = np.random.default_rng([config.seed, progress.epoch]).permutation(drawn).tolist()
        if windows_epoch != progress.epoch:
            windows_epoch = progress.epoch
            windows = epoch_windows(train_set, config.seed, progress.epoch, config.dataset_type)
        if packed is None:
            batches = [progress.order[i : i + config.batch_size] for i in range(0, len(progress.order), config.batch_size)]
        else:
            batches = [packed[b] for b in progress.order]
        group = batches[progress.batch_index : progress.batch_index + config.gradient_accumulation_steps]

        # Weigh each micro-batch as its share of the step's tokens (supervised) or pairs (DPO), so
        # the accumulated gradient is the gradient of one batch of the whole group, however the
        # group is split into micro-batches and across processes.
        tokens = sum(windows[i].frames for indices in group for i in indices) * decoder_config.num_codebooks
        pairs = sum(len(indices) for indices in group)
        learning_rate = scheduler.get_last_lr()[0]
        sums = dict.fromkeys(("loss", *(DPO_REWARDS if preference else ())), 0.0)
        for indices in map(processes.shard, group):
            if not indices:
                continue
            reference = train_references[indices] if preference else None
            loss, metrics = forward([windows[i] for i in indices], reference, training=True, tokens=tokens)
            if preference:
                loss = loss * (len(indices) / pairs)
            loss.backward()
            sums["loss"] += loss.item()
            for key, value in metrics.items():
                sums[key] += value * len(indices) / pairs
        sum_gradients(parameters, processes)
        sums = dict(zip(sums, processes.sum(torch.tensor(list(sums.values()), dtype=torch.float64, device=device))
                        .tolist()))
        max_norm = config.max_grad_norm if config.max_grad_norm > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm).item()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        epoch = progress.epoch
        progress.step += 1
        progress.batch_index += len(group)
        if progress.batch_index >= len(batches):
            progress.epoch, progress.batch_index, progress.order = progress.epoch + 1, 0, []
        progress.loss = sums.pop("loss")
        if not math.isfinite(progress.loss):
            raise TrainingError(f"loss became {progress.loss} at step {progress.step}; try a lower learning rate")
        emit(StepLine(step=progress.step, epoch=epoch + 1, loss=progress.loss, learning_rate=learning_rate,
                      grad_norm=grad_norm, **sums))
        bar.set_postfix(loss=f"{progress.loss:.4f}", refresh=False)  # redrawn by update, at the bar's interval
        bar.update(1)

        saved = None
        if progress.step % config.checkpoint_every == 0 or progress.step == total_steps:
            if validation_set:
                loss = validate()
                best = progress.best_validation_loss
                progress.best_validation_loss = loss if best is None else min(best, loss)
                emit(ValidationLine(step=progress.step, loss=loss, best_loss=progress.best_validation_loss))
            saved = save()
        if processes.any(should_stop(), device) and progress.step < total_steps:
            raise Stopped(saved or save())
    bar.close()

    processes.barrier()
    stop_processes()
    if not processes.main:
        return None
    adapter, sha256 = save_adapter(output, model, config, name, digest, progress)
    log.info("adapter %s (sha256 %s), final loss %.4f", adapter, sha256, progress.loss)
    emit(AdapterLine(path=adapter, sha256=sha256))
    result = CompletedLine(final_loss=progress.loss, best_validation_loss=progress.best_validation_loss,
                           steps=progress.step, seconds=round(time.perf_counter() - started, 3), adapter=adapter)
    emit(result)
    return result
