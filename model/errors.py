"""Errors a user can act on; the command lines turn them into exit code 2."""


class InputError(ValueError):
    """Bad input: a dataset row, an audio file, a configuration value, a base model or adapter path.
    The message names the file (and line) and says what is wrong."""


class AdapterMismatchError(InputError):
    """An adapter's saved keys do not match the LoRA modules created for it on the model: loading it
    would silently leave some (or all) of it unused."""
