"""The model CLI as a child process of the trainer.

The child is tied to the trainer's life (Linux `PR_SET_PDEATHSIG`): if the trainer is killed, its
training process dies with it instead of training on, unseen, beside the trainer that resumes the
run. A stopped trainer (SIGTERM) instead asks the child to checkpoint and exit (`terminate`).
"""
from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from model.training.config import TrainingConfig

_PR_SET_PDEATHSIG = 1

# Variables the training process is not given: the trainer's own settings and the credentials of its
# servers (NATS, PostgreSQL and libpq's PG*), which the model CLI never uses. Everything else is
# passed on: CUDA, NCCL, torch, Hugging Face and thread-count variables are many and vary by set-up,
# and an allow-list missing one would break training on some machines rather than leak nothing.
_WITHHELD_PREFIXES = ("CADENZA_", "NATS_", "PG")
_WITHHELD_NAMES = frozenset({"DATABASE_URL"})


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def write_config(config: TrainingConfig, path: Path) -> Path:
    """The run's configuration as the CLI's `--config` file: every field, so the CLI adds nothing."""
    path.write_text(config.model_dump_json(indent=2))
    return path


def training_command(python: str, processes: int, dataset: Path, output: Path, name: str, config: Path,
                     cache_dir: Path, resume: Path | None) -> list[str]:
    """The model CLI, under torchrun when several processes train together. torchrun passes a
    SIGTERM on to every process (`terminate`), and process 0 alone writes to stdout."""
    launcher = [python]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    command = [
        *launcher, "-m", "model.training.cli", "train",
        "--dataset", str(dataset), "--output", str(output), "--name", name,
        "--config", str(config), "--cache-dir", str(cache_dir),
    ]
    if resume is not None:
        command += ["--resume", str(resume)]
    return command


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` less the trainer's settings and server credentials (`_WITHHELD_PREFIXES`)."""
    return {name: value for name, value in environ.items()
            if name not in _WITHHELD_NAMES and not name.startswith(_WITHHELD_PREFIXES)}


def model_source_root() -> Path:
    """The folder that holds the `model` package (the source tree, or site-packages once installed)."""
    spec = importlib.util.find_spec("model")
    if spec is None or spec.origin is None:
        raise RuntimeError("the `model` package is not importable: install cadenza or run from its source folder")
    return Path(spec.origin).parent.parent


async def start(command: list[str], parent: Path) -> asyncio.subprocess.Process:
    """Start `command` in a new, empty folder inside `parent`. transformers loads a hub id that names
    a folder relative to the working directory from that folder; in an empty one a run's
    `base_model` is a hub id whatever folders lie where the trainer runs. `model` is imported from
    the trainer's own source folder all the same (PYTHONPATH). The child's environment holds none of
    the trainer's settings or credentials (`child_environment`): all it needs is on its command line."""
    folder = tempfile.mkdtemp(prefix="workdir-", dir=parent)
    python_path = [str(model_source_root()), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**child_environment(os.environ), "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(python_path)}
    # A session of its own keeps a terminal's Ctrl-C (sent to the whole foreground group) away from
    # the child: the trainer decides how it stops.
    return await asyncio.create_subprocess_exec(
        *command,
        cwd=folder,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_die_with_parent,
        start_new_session=True,
        limit=1 << 20,
    )


def terminate(process: asyncio.subprocess.Process) -> None:
    """Ask the CLI to save a checkpoint and stop (it exits with `protocol.EXIT_STOPPED`)."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)


async def lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    """Lines of a child's output. A progress bar redraws itself with carriage returns: each redraw
    counts as a line, so it cannot grow one unbounded line."""
    pending = b""
    while chunk := await stream.read(1 << 16):
        pending += chunk
        *complete, pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        for line in complete:
            if line.strip():
                yield line.decode(errors="replace")
    if pending.strip():
        yield pending.decode(errors="replace")
