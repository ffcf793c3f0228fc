"""Upcasters: how a payload stored by an older version of an event becomes the current version.

Events on the stream are never rewritten (it is the audit log, deletes are denied), so every old
version ever published must stay readable. Each upcaster lifts a payload by exactly one version;
`upcast` chains them up to the version the catalogue knows today.
"""
from __future__ import annotations

from typing import Any, Callable

from model.training.config import with_num_epochs

Payload = dict[str, Any]


def run_requested_v1_to_v2(payload: Payload) -> Payload:
    """v1 carried the first API's config (`epochs`, `batch_size`, `learning_rate`, `lora_r`,
    `lora_alpha`, `dataset_type`, `base_model`); v2 carries a `TrainingConfig`, which names the
    epoch count `num_epochs`. Fields v1 never had keep the TrainingConfig defaults."""
    return {**payload, "config": with_num_epochs(payload["config"])}


UPCASTERS: dict[tuple[str, int], Callable[[Payload], Payload]] = {
    ("RunRequested", 1): run_requested_v1_to_v2,
}


class UnknownEventVersion(ValueError):
    pass


def upcast(event_type: str, version: int, current_version: int, payload: Payload) -> Payload:
    """Lift `payload` from `version` to `current_version`, one registered step at a time."""
    if version > current_version:
        raise UnknownEventVersion(
            f"{event_type} version {version} is newer than this code knows (version {current_version}): "
            "upgrade Cadenza before reading this stream"
        )
    while version < current_version:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise UnknownEventVersion(f"no upcaster from {event_type} version {version} to {version + 1}")
        payload = step(payload)
        version += 1
    return payload
