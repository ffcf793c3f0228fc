"""`python -m model.training.cli train ...`: LoRA fine-tuning of MusicGen from a JSONL dataset.

stdout carries only JSON lines, one object per line with a "type": started, step, validation,
checkpoint, adapter, completed, failed. Logs and the progress bar go to stderr.

Exit codes: 0 done, 1 training failed, 2 bad input (dataset row, audio file, config, base model,
checkpoint), 3 stopped by SIGTERM/SIGINT after saving a checkpoint (resume with --resume).
"""

import argparse
import json
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

from pydantic import ValidationError

from model.errors import InputError, Stopped
from model.training.config import TrainingConfig
from model.training.protocol import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_STOPPED, FailedLine, Line, write_line

# flag -> TrainingConfig field; a flag given on the command line overrides --config.
FLAG_FIELDS = {
    "type": "dataset_type", "base_model": "base_model", "epochs": "num_epochs", "batch_size": "batch_size",
    "batch_frames": "batch_frames", "lr": "learning_rate", "lora_r": "lora_r", "lora_alpha": "lora_alpha",
    "max_steps": "max_steps", "seed": "seed", "device": "device", "precision": "precision",
    "activation_checkpointing": "activation_checkpointing", "compile": "compile",
}
# What may differ when resuming, possibly on another machine: where the base model lies and what runs
# it, and how (none of these changes what is computed beyond rounding).
RESUME_MAY_CHANGE = {"base_model", "device", "precision", "activation_checkpointing", "compile"}


def _doc(field: str) -> str:
    info = TrainingConfig.model_fields[field]
    return f"{info.description} (default {info.default})".replace("%", "%%")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m model.training.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a LoRA adapter")
    train.add_argument("--dataset", type=Path, required=True, help="JSONL file of rows")
    train.add_argument("--type", choices=["supervised", "preference"], help=_doc("dataset_type"))
    train.add_argument("--output", type=Path, required=True, help="run folder: checkpoints/ and adapter/")
    train.add_argument("--name", required=True, help="run name, recorded in the adapter manifest")
    train.add_argument("--base-model", help="hub id or local folder (default facebook/musicgen-small)")
    train.add_argument("--epochs", type=int, help=_doc("num_epochs"))
    train.add_argument("--batch-size", type=int, help=_doc("batch_size"))
    train.add_argument("--batch-frames", type=int, help=_doc("batch_frames"))
    train.add_argument("--lr", type=float, help=_doc("learning_rate"))
    train.add_argument("--lora-r", type=int, help=_doc("lora_r"))
    train.add_argument("--lora-alpha", type=int, help=_doc("lora_alpha"))
    train.add_argument("--max-steps", type=int, help=_doc("max_steps"))
    train.add_argument("--seed", type=int, help=_doc("seed"))
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], help=_doc("device"))
    train.add_argument("--precision", choices=["auto", "fp32", "bf16"], help=_doc("precision"))
    train.add_argument("--activation-checkpointing", action=argparse.BooleanOptionalAction,
                       help=_doc("activation_checkpointing"))
    train.add_argument("--compile", choices=["auto", "on", "off"], help=_doc("compile"))
    train.add_argument("--config", type=Path, help="JSON file of TrainingConfig fields; flags override it")
    train.add_argument("--resume", type=Path, help="checkpoint folder to continue from")
    train.add_argument("--cache-dir", type=Path, help="feature cache (default $CADENZA_CACHE_DIR or ~/.cache/cadenza)")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> TrainingConfig:
    """--config, then flags; on --resume the checkpoint's config, which flags may only repeat."""
    values = {}
    if args.config:
        try:
            values = json.loads(args.config.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(f"{args.config}: cannot read config ({error})") from None
        if not isinstance(values, dict):
            raise InputError(f"{args.config}: config must be a JSON object of TrainingConfig fields")
    values.update({f: getattr(args, flag) for flag, f in FLAG_FIELDS.items() if getattr(args, flag) is not None})
    try:
        config = TrainingConfig(**values)
    except ValidationError as error:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise InputError(f"invalid training config: {reasons}") from None
    if not args.resume:
        return config
    from model.training.checkpoint import read_checkpoint  # imports torch: only when resuming

    saved = read_checkpoint(args.resume).config
    for key in values.keys() - RESUME_MAY_CHANGE:
        if getattr(config, key) != getattr(saved, key):
            raise InputError(f"{key}={getattr(config, key)!r} differs from checkpoint {args.resume} "
                             f"({getattr(saved, key)!r}); a resumed run keeps its configuration")
    return saved.model_copy(update={k: getattr(config, k) for k in values.keys() & RESUME_MAY_CHANGE})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Everything but our JSON lines (library prints included) goes to stderr.
    events = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    log = logging.getLogger("cadenza.model")

    # Under torchrun every process runs this; process 0 alone speaks for the run.
    speaks = os.environ.get("RANK", "0") == "0"

    def emit(line: Line) -> None:
        if speaks:
            events.write(write_line(line) + "\n")
            events.flush()

    stop = []

    def request_stop(signum: int, frame: object) -> None:
        log.warning("%s received: checkpointing after the current step", signal.Signals(signum).name)
        stop.append(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    try:
        config = build_config(args)
        from model.training.features import default_cache_dir
        from model.training.trainer import train
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        train(config, args.dataset, args.output, args.name, emit, args.cache_dir or default_cache_dir(),
              resume=args.resume, should_stop=lambda: bool(stop))
        return EXIT_OK
    except InputError as error:
        log.error("bad input: %s", error)
        emit(FailedLine(error=str(error), exit_code=EXIT_BAD_INPUT))
        return EXIT_BAD_INPUT
    except Stopped as stopped:
        log.warning("stopped; resume with --resume %s", stopped.checkpoint)
        return EXIT_STOPPED
    except Exception as error:
        traceback.print_exc()
        emit(FailedLine(error=f"{type(error).__name__}: {error}", exit_code=EXIT_FAILED))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
