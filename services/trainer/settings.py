"""What a trainer process is configured with, beyond the shared `Settings` (env or flags)."""
from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from services.workqueue import FETCH_TIMEOUT, default_worker_id

# Every trainer binds the same durable consumer: together they form one work queue.
DURABLE_NAME = "trainer"


@dataclass(frozen=True)
class TrainerSettings:
    """How one trainer process takes and runs training jobs.

    `max_attempts` bounds the failed attempts at one run: the trainer that takes a delivery counts
    the earlier ones from the run's history (those handed back by a stopping trainer do not count)
    and fails the run once they reach the limit; the consumer itself redelivers without limit.
    `ack_wait` is how long JetStream waits without an ack or heartbeat before it redelivers the
    request to another trainer, i.e. how soon a crashed trainer's run is resumed; heartbeats are
    sent every `ack_wait / 4` while a run is in hand. An idle trainer asks for a request every
    `fetch_timeout` seconds, and takes up to that long to stop.
    `gpus` above 1 trains each run data-parallel in that many processes under torchrun, one per GPU
    (gloo processes on a CPU).
    """

    trainer_id: str = field(default_factory=default_worker_id)
    concurrency: int = 1
    device: str | None = None  # overrides the run config's device ("cpu", "cuda", "auto")
    python: str = sys.executable
    cache_dir: Path | None = None  # None: the shared Settings.cache_dir
    max_attempts: int = 3
    ack_wait: float = 60.0
    fetch_timeout: float = FETCH_TIMEOUT
    gpus: int = 1

    def __post_init__(self) -> None:
        if self.gpus < 1:
            raise ValueError(f"gpus must be at least 1, got {self.gpus}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.ack_wait < 1:
            raise ValueError(f"ack_wait must be at least 1 second, got {self.ack_wait}")
        if not 0 < self.fetch_timeout < math.inf:  # NaN fails this too
            raise ValueError(f"fetch_timeout must be above 0 seconds and finite, got {self.fetch_timeout}")

    @classmethod
    def from_env(cls, **overrides: object) -> "TrainerSettings":
        """From `CADENZA_TRAINER_*` variables; keyword overrides that are not None win."""
        env = os.environ
        config = cls(
            trainer_id=env.get("CADENZA_TRAINER_ID") or default_worker_id(),
            concurrency=int(env.get("CADENZA_TRAINER_CONCURRENCY", 1)),
            device=env.get("CADENZA_TRAINER_DEVICE") or None,
            python=env.get("CADENZA_TRAINER_PYTHON") or sys.executable,
            cache_dir=Path(env["CADENZA_TRAINER_CACHE_DIR"]) if env.get("CADENZA_TRAINER_CACHE_DIR") else None,
            max_attempts=int(env.get("CADENZA_TRAINER_MAX_ATTEMPTS", 3)),
            ack_wait=float(env.get("CADENZA_TRAINER_ACK_WAIT", 60.0)),
            fetch_timeout=float(env.get("CADENZA_TRAINER_FETCH_TIMEOUT", FETCH_TIMEOUT)),
            gpus=int(env.get("CADENZA_TRAINER_GPUS", 1)),
        )
        config = replace(config, **{name: value for name, value in overrides.items() if value is not None})
        # Absolute as the folder the trainer was started in means them: its training processes run in
        # an empty folder of their own, and `cadenza trainer` too (services.supervisor.in_empty_folder).
        # A bare `python` is looked up on PATH.
        return replace(config, cache_dir=config.cache_dir.absolute() if config.cache_dir else None,
                       python=str(Path(config.python).absolute()) if os.sep in config.python else config.python)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The trainer's flags; each defaults to its `CADENZA_TRAINER_*` variable."""
    parser.add_argument("--trainer-id", help="name in RunStarted events (default: host-pid)")
    parser.add_argument("--concurrency", type=int, help="runs trained at once by this process (default 1)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override every run's device")
    parser.add_argument("--python", help="python executable that runs the model CLI (default: this one)")
    parser.add_argument("--cache-dir", type=Path, help="audio cache and run folders (default: <data dir>/cache)")
    parser.add_argument("--max-attempts", type=int, help="trainings of one run before it is failed (default 3)")
    parser.add_argument("--ack-wait", type=float, help="seconds before a silent trainer's run is redelivered (default 60)")
    parser.add_argument("--fetch-timeout", type=float,
                        help=f"seconds an idle trainer waits for a request before asking again, so also the "
                             f"longest it takes to stop when idle (default {FETCH_TIMEOUT:g})")
    parser.add_argument("--gpus", type=int,
                        help="processes that train each run together under torchrun, one per GPU (default 1)")


def from_arguments(arguments: argparse.Namespace) -> TrainerSettings:
    return TrainerSettings.from_env(
        trainer_id=arguments.trainer_id,
        concurrency=arguments.concurrency,
        device=arguments.device,
        python=arguments.python,
        cache_dir=arguments.cache_dir,
        max_attempts=arguments.max_attempts,
        ack_wait=arguments.ack_wait,
        fetch_timeout=arguments.fetch_timeout,
        gpus=arguments.gpus,
    )
