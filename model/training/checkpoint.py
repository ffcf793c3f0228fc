"""Checkpoints (everything a resume needs, in one folder) and the final adapter.

DIR/checkpoints/step-000100/
    adapter_model.safetensors, adapter_config.json   the LoRA weights, PEFT format
    training_state.pt    optimizer, scheduler, progress (step, epoch, data order), RNG states
    checkpoint.json      training config, run name, dataset digest, step: what it is, readable

DIR/adapter/
    adapter_model.safetensors, adapter_config.json   PEFT format, loads with model.loading.load_adapter
    manifest.json        training config, base model, dataset digest, steps, final loss, weights sha256

Both are written to a sibling `.partial` folder and renamed into place, so a folder that exists is
complete: the trainer service may upload it the moment it sees the event.
"""

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import peft
import torch
import transformers
from peft import PeftModel

from model.data import file_sha256
from model.errors import InputError
from model.loading import ADAPTER_WEIGHTS
from model.training.config import TrainingConfig

TRAINING_STATE = "training_state.pt"
CHECKPOINT_INFO = "checkpoint.json"
MANIFEST = "manifest.json"


@dataclass
class Progress:
    """Where training stands: restored exactly on resume."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # 0-based epoch the next batch belongs to
    batch_index: int = 0  # next batch within that epoch
    # This epoch's order (empty: not drawn yet): of the examples, or with batch_frames of the batches
    # packed once per run, which the run packs again the same way on resume. Checkpoints of runs
    # without batch_frames keep meaning what they always did.
    order: list[int] = field(default_factory=list)
    loss: float | None = None  # last step's training loss
    best_validation_loss: float | None = None


@dataclass
class Checkpoint:
    folder: Path
    config: TrainingConfig
    name: str
    dataset_digest: str
    progress: Progress


def _write_atomically(folder: Path, write) -> None:
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    write(partial)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def save_checkpoint(
    output: Path,
    model: PeftModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    progress: Progress,
    config: TrainingConfig,
    name: str,
    dataset_digest: str,
) -> Path:
    folder = output / "checkpoints" / f"step-{progress.step:06d}"

    def write(partial: Path) -> None:
        model.save_pretrained(partial)
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "progress": asdict(progress),
            "rng": rng,
        }
        torch.save(state, partial / TRAINING_STATE)
        info = {"name": name, "step": progress.step, "dataset_digest": dataset_digest,
                "training_config": config.model_dump()}
        (partial / CHECKPOINT_INFO).write_text(json.dumps(info, indent=2))

    _write_atomically(folder, write)
    return folder


def read_checkpoint(folder: Path) -> Checkpoint:
    """The checkpoint's description; its tensors are loaded by restore_training_state."""
    for needed in (CHECKPOINT_INFO, TRAINING_STATE, ADAPTER_WEIGHTS):
        if not (folder / needed).is_file():
            raise InputError(f"{folder}: not a checkpoint folder (no {needed})")
    info = json.loads((folder / CHECKPOINT_INFO).read_text())
    progress = Progress(**torch.load(folder / TRAINING_STATE, weights_only=True)["progress"])
    return Checkpoint(folder, TrainingConfig(**info["training_config"]), info["name"], info["dataset_digest"], progress)


def restore_training_state(
    folder: Path, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
) -> None:
    """Load optimizer and scheduler state and set the RNGs to where the checkpointed run was."""
    state = torch.load(folder / TRAINING_STATE, weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])


def save_adapter(
    output: Path,
    model: PeftModel,
    config: TrainingConfig,
    name: str,
    dataset_digest: str,
    progress: Progress,
) -> tuple[Path, str]:
    """Write the final adapter; return its folder and the sha256 of its weights file."""
    folder = output / "adapter"
    digest = {}

    def write(partial: Path) -> None:
        model.save_pretrained(partial)
        digest["sha256"] = file_sha256(partial / ADAPTER_WEIGHTS)
        manifest = {
            "name": name,
            "base_model": config.base_model,
            "dataset_type": config.dataset_type,
            "dataset_digest": dataset_digest,
            "steps": progress.step,
            "final_loss": progress.loss,
            "best_validation_loss": progress.best_validation_loss,
            "weights_sha256": digest["sha256"],
            "training_config": config.model_dump(),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2))

    _write_atomically(folder, write)
    return folder, digest["sha256"]
