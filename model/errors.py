"""Exceptions the command lines turn into exit codes: InputError 2, Stopped 3."""

from pathlib import Path


class InputError(ValueError):
    """Bad input: a dataset row, an audio file, a configuration value, a base model or adapter path.
    The message names the file (and line) and says what is wrong."""


class AdapterMismatchError(InputError):
    """An adapter's saved keys do not match the LoRA modules created for it on the model: loading it
    would silently leave some (or all) of it unused."""


class Stopped(Exception):
    """A stop was requested (SIGTERM). `checkpoint` is where training can resume from, or None if it
    stopped before the first step (the feature cache keeps what was already encoded)."""

    def __init__(self, checkpoint: Path | None = None):
        super().__init__(f"stopped; checkpoint: {checkpoint}")
        self.checkpoint = checkpoint
