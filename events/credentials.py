"""NATS credentials as the bus connects with them: what fails, and how it says so without them."""
from __future__ import annotations

from pathlib import Path


class NatsCredentialsError(RuntimeError):
    """The credentials cannot connect: a creds file missing or malformed, or refused by the server.
    The message names where they come from, never what they are."""


def check_creds_file(path: Path) -> None:
    """Raise `NatsCredentialsError` unless `path` reads as a NATS credentials file: nats-py reads it
    only while connecting, and retries forever on a missing one or fails obscurely on a malformed one."""
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise NatsCredentialsError(f"cannot read the NATS credentials file {path}: {error.strerror}") from None
    if "BEGIN NATS USER JWT" not in text or "BEGIN USER NKEY SEED" not in text:
        raise NatsCredentialsError(f"{path} is not a NATS credentials file (a user JWT and its NKey seed)")
