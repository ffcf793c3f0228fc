"""A generation's life, stated once: its statuses, how each of its events changes its state (a pure
fold over its history), and what each command may do in which state.

The API (cancel), the generation worker (whether to take a delivery) and the registry's SQL guards
all decide with this module. A status only moves forward: `queued` → `running` → one of the
finished statuses, which nothing changes afterwards.
"""
from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, computed_field

from events.attempts import failed_attempts
from events.base import Event
from events.catalogue import (
    GenerationCancelled, GenerationCancelRequested, GenerationCompleted, GenerationFailed, GenerationHandedBack,
    GenerationStarted, SampleGenerated,
)

SAMPLE_ID_NAMESPACE = uuid.UUID("3b8d1f5e-2c47-4a0e-9d61-7e2a5c9b0f14")


class GenerationStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = frozenset({GenerationStatus.QUEUED, GenerationStatus.RUNNING})
FINISHED = frozenset(GenerationStatus) - ACTIVE
FINAL_STATUS: dict[type[Event], GenerationStatus] = {
    GenerationCompleted: GenerationStatus.COMPLETED,
    GenerationFailed: GenerationStatus.FAILED,
    GenerationCancelled: GenerationStatus.CANCELLED,
}


def sample_id(generation_id: str, index: int) -> str:
    """The id of sample `index` of a generation: the same on every attempt, so a request generated
    again after a redelivery stores each sample once."""
    return str(uuid.uuid5(SAMPLE_ID_NAMESPACE, f"{generation_id}:{index}"))


class GenerationState(BaseModel):
    """What a generation's history says about it, as far as deciding on it goes."""

    model_config = ConfigDict(frozen=True)

    status: GenerationStatus = GenerationStatus.QUEUED
    attempt: int = 0
    cancel_requested: bool = False
    error: str | None = None
    samples: frozenset[int] = frozenset()  # indexes generated so far
    handed_back: int = 0  # attempts a stopping worker handed back: they do not count as failed

    @computed_field  # type: ignore[prop-decorator]
    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def evolve(state: GenerationState, event: Event) -> GenerationState:
    """The state after `event`; events that do not change what is decided leave it as it is."""
    if isinstance(event, SampleGenerated):  # a sample finished before a cancel still exists
        return state.model_copy(update={"samples": state.samples | {event.index}})
    if state.finished:
        return state
    if isinstance(event, GenerationStarted) and event.attempt > state.attempt:
        return state.model_copy(update={"status": GenerationStatus.RUNNING, "attempt": event.attempt})
    if isinstance(event, GenerationHandedBack):
        return state.model_copy(update={"handed_back": state.handed_back + 1})
    if isinstance(event, GenerationCancelRequested):
        return state.model_copy(update={"cancel_requested": True})
    if type(event) in FINAL_STATUS:
        error = event.error if isinstance(event, GenerationFailed) else None
        return state.model_copy(update={"status": FINAL_STATUS[type(event)],
                                        "attempt": max(state.attempt, event.attempt), "error": error})
    return state


def fold(history: Iterable[Event]) -> GenerationState:
    state = GenerationState()
    for event in history:
        state = evolve(state, event)
    return state


# --- commands -----------------------------------------------------------------------------------
class GenerationAlreadyFinished(Exception):
    def __init__(self, generation_id: str, status: GenerationStatus) -> None:
        super().__init__(f"generation '{generation_id}' is already {status}")


def cancel(generation_id: str, status: GenerationStatus) -> list[Event]:
    """What cancelling a generation in `status` publishes: a queued one is cancelled at once (no
    worker holds it); a running one is asked to stop, and its worker says when it has."""
    if status in FINISHED:
        raise GenerationAlreadyFinished(generation_id, status)
    events: list[Event] = [GenerationCancelRequested(generation_id=generation_id)]
    if status is GenerationStatus.QUEUED:
        events.append(GenerationCancelled(generation_id=generation_id, attempt=0))
    return events


@dataclass(frozen=True)
class Skip:
    """The generation is finished already: the delivery has nothing to do."""


@dataclass(frozen=True)
class Finish:
    """The generation must end now without generating, with this event."""

    event: GenerationCancelled | GenerationFailed


@dataclass(frozen=True)
class Generate:
    pass


def take_delivery(state: GenerationState, generation_id: str, attempt: int, max_attempts: int,
                  cancel_seen: bool) -> Skip | Finish | Generate:
    """What a worker does with delivery number `attempt` of a generation request, given the
    generation's state and whether a cancel arrived while its history was being read. Attempts a
    stopping worker handed back do not count against `max_attempts`."""
    if state.finished:
        return Skip()
    if cancel_seen or state.cancel_requested:
        return Finish(GenerationCancelled(generation_id=generation_id, attempt=state.attempt))
    if failed_attempts(attempt, state.handed_back) >= max_attempts:
        return Finish(GenerationFailed(
            generation_id=generation_id, attempt=state.attempt,
            error=f"gave up after {max_attempts} attempts: each worker that took it stopped before finishing it"))
    return Generate()
