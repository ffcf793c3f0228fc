"""A run's life, stated once: its statuses, how each of its events changes its state (a pure fold
over its history), and what each command may do in which state.

The API (cancel, live updates), the trainer (whether and how to take a delivery) and the
registry's SQL guards all decide with this module. A status only moves forward: `queued` →
`running` → one of the finished statuses, which nothing changes afterwards; a late event of an
earlier attempt never takes a run back.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, computed_field

from events.attempts import failed_attempts
from events.base import Event
from events.catalogue import (
    CheckpointSaved, RunAttemptFailed, RunCancelled, RunCancelRequested, RunCompleted, RunFailed, RunHandedBack,
    RunStarted,
)


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
FINISHED = frozenset(RunStatus) - ACTIVE
FINAL_STATUS: dict[type[Event], RunStatus] = {
    RunCompleted: RunStatus.COMPLETED,
    RunFailed: RunStatus.FAILED,
    RunCancelled: RunStatus.CANCELLED,
}


class RunState(BaseModel):
    """What a run's history says about it, as far as deciding on it goes."""

    model_config = ConfigDict(frozen=True)

    status: RunStatus = RunStatus.QUEUED
    attempt: int = 0  # the latest attempt that started (or that finished the run)
    cancel_requested: bool = False
    error: str | None = None  # why the run failed, or why its latest attempt did while it is retried
    checkpoint: CheckpointSaved | None = None  # the latest, to resume from
    handed_back: int = 0  # attempts a stopping trainer handed back: they do not count as failed

    @computed_field  # type: ignore[prop-decorator]
    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def evolve(state: RunState, event: Event) -> RunState:
    """The state after `event`; events that do not change what is decided leave it as it is."""
    if state.finished:
        return state
    if isinstance(event, RunStarted) and event.attempt > state.attempt:
        return state.model_copy(update={"status": RunStatus.RUNNING, "attempt": event.attempt, "error": None})
    if isinstance(event, RunAttemptFailed) and event.attempt >= state.attempt:
        return state.model_copy(update={"error": event.error})
    if isinstance(event, CheckpointSaved) and (state.checkpoint is None or event.step >= state.checkpoint.step):
        return state.model_copy(update={"checkpoint": event})
    if isinstance(event, RunHandedBack):
        return state.model_copy(update={"handed_back": state.handed_back + 1})
    if isinstance(event, RunCancelRequested):
        return state.model_copy(update={"cancel_requested": True})
    if type(event) in FINAL_STATUS:
        error = event.error if isinstance(event, RunFailed) else None
        return state.model_copy(update={"status": FINAL_STATUS[type(event)],
                                        "attempt": max(state.attempt, event.attempt), "error": error})
    return state


def fold(history: Iterable[Event]) -> RunState:
    state = RunState()
    for event in history:
        state = evolve(state, event)
    return state


# --- commands -----------------------------------------------------------------------------------
class RunAlreadyFinished(Exception):
    def __init__(self, run_id: str, status: RunStatus) -> None:
        super().__init__(f"run '{run_id}' is already {status}")


def cancel(run_id: str, status: RunStatus) -> list[Event]:
    """What cancelling a run in `status` publishes: a queued run is cancelled at once (no trainer
    holds it); a running one is asked to stop, and its trainer says when it has."""
    if status in FINISHED:
        raise RunAlreadyFinished(run_id, status)
    events: list[Event] = [RunCancelRequested(run_id=run_id)]
    if status is RunStatus.QUEUED:
        events.append(RunCancelled(run_id=run_id, attempt=0))
    return events


@dataclass(frozen=True)
class Skip:
    """The run is finished already: the delivery has nothing to do."""


@dataclass(frozen=True)
class Finish:
    """The run must end now without training, with this event."""

    event: RunCancelled | RunFailed


@dataclass(frozen=True)
class Train:
    resume_from: CheckpointSaved | None


def take_delivery(state: RunState, run_id: str, attempt: int, max_attempts: int,
                  cancel_seen: bool) -> Skip | Finish | Train:
    """What a trainer does with delivery number `attempt` of a run's request, given the run's state
    and whether a cancel arrived while the history was being read."""
    if state.finished:
        return Skip()
    if cancel_seen or state.cancel_requested:
        return Finish(RunCancelled(run_id=run_id, attempt=state.attempt))
    if failed_attempts(attempt, state.handed_back) >= max_attempts:
        if state.error is not None:
            why = f"the last one failed in the trainer with {state.error}"
        else:
            why = "each trainer that took this run stopped before finishing it (crashed, killed or lost its connection)"
        return Finish(RunFailed(run_id=run_id, attempt=state.attempt,
                                error=f"gave up after {max_attempts} attempts: {why}"))
    return Train(resume_from=state.checkpoint)
