"""What a generation worker is configured with, beyond the shared `Settings` (env or flags)."""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from services.workqueue import FETCH_TIMEOUT, default_worker_id

# Every generation worker binds the same durable consumer: together they form one work queue.
DURABLE_NAME = "generator"


@dataclass(frozen=True)
class GeneratorSettings:
    """How one generation worker takes and runs generation requests.

    Like the trainer's: `max_attempts` bounds the failed attempts at one generation, which the worker
    that takes a delivery counts from the generation's history (those a stopping worker handed back
    do not count); the consumer redelivers without limit. `ack_wait` is how soon a dead worker's
    request goes to another worker, and `fetch_timeout` how often an idle one asks for a request (so
    also how long it may take to stop). `max_adapters` adapters are held per base model (least
    recently used ones are dropped). `device` and `precision` are MusicGenerator's ('auto' picks by hardware).
    """

    worker_id: str = field(default_factory=default_worker_id)
    cache_dir: Path | None = None  # None: the shared Settings.cache_dir
    device: str = "auto"
    precision: str = "auto"
    max_adapters: int = 8
    max_attempts: int = 3
    ack_wait: float = 60.0
    fetch_timeout: float = FETCH_TIMEOUT

    def __post_init__(self) -> None:
        if self.max_adapters < 1:
            raise ValueError(f"max_adapters must be at least 1, got {self.max_adapters}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.ack_wait < 1:
            raise ValueError(f"ack_wait must be at least 1 second, got {self.ack_wait}")
        if not 0 < self.fetch_timeout < math.inf:  # NaN fails this too
            raise ValueError(f"fetch_timeout must be above 0 seconds and finite, got {self.fetch_timeout}")

    @classmethod
    def from_env(cls, **overrides: object) -> "GeneratorSettings":
        """From `CADENZA_GENERATOR_*` variables; keyword overrides that are not None win."""
        env = os.environ
        config = cls(
            worker_id=env.get("CADENZA_GENERATOR_ID") or default_worker_id(),
            cache_dir=Path(env["CADENZA_GENERATOR_CACHE_DIR"]) if env.get("CADENZA_GENERATOR_CACHE_DIR") else None,
            device=env.get("CADENZA_GENERATOR_DEVICE") or "auto",
            precision=env.get("CADENZA_GENERATOR_PRECISION") or "auto",
            max_adapters=int(env.get("CADENZA_GENERATOR_MAX_ADAPTERS", 8)),
            max_attempts=int(env.get("CADENZA_GENERATOR_MAX_ATTEMPTS", 3)),
            ack_wait=float(env.get("CADENZA_GENERATOR_ACK_WAIT", 60.0)),
            fetch_timeout=float(env.get("CADENZA_GENERATOR_FETCH_TIMEOUT", FETCH_TIMEOUT)),
        )
        config = replace(config, **{name: value for name, value in overrides.items() if value is not None})
        # Absolute as the folder the worker was started in means it: `cadenza generator` runs in an
        # empty working directory (services.supervisor.in_empty_folder).
        return replace(config, cache_dir=config.cache_dir.absolute() if config.cache_dir else None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The generation worker's flags; each defaults to its `CADENZA_GENERATOR_*` variable."""
    parser.add_argument("--worker-id", help="name in GenerationStarted events (default: host-pid)")
    parser.add_argument("--cache-dir", type=Path, help="adapter cache (default: <data dir>/cache)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to generate (default auto)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="default auto: bf16 where native")
    parser.add_argument("--max-adapters", type=int, help="adapters held per base model (default 8)")
    parser.add_argument("--max-attempts", type=int, help="generations of one request before it is failed (default 3)")
    parser.add_argument("--ack-wait", type=float, help="seconds before a silent worker's request is redelivered (default 60)")
    parser.add_argument("--fetch-timeout", type=float,
                        help=f"seconds an idle worker waits for a request before asking again, so also the "
                             f"longest it takes to stop when idle (default {FETCH_TIMEOUT:g})")


def from_arguments(arguments: argparse.Namespace) -> GeneratorSettings:
    return GeneratorSettings.from_env(
        worker_id=arguments.worker_id,
        cache_dir=arguments.cache_dir,
        device=arguments.device,
        precision=arguments.precision,
        max_adapters=arguments.max_adapters,
        max_attempts=arguments.max_attempts,
        ack_wait=arguments.ack_wait,
        fetch_timeout=arguments.fetch_timeout,
    )
