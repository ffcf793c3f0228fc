"""A run's life as `events.runs` states it: the fold over its history, and the commands' preconditions."""
import re
from pathlib import Path

import pytest

from events import runs
from events.base import ObjectRef
from events.catalogue import (
    CheckpointSaved, LossReported, RunAttemptFailed, RunHandedBack, RunCancelled, RunCancelRequested, RunCompleted, RunFailed,
    RunRequested, RunStarted,
)
from events.runs import RunStatus

MIGRATIONS = Path(__file__).parents[2] / "services" / "registry" / "migrations"
REQUESTED = RunRequested(run_id="r", experiment_id="e", dataset_id="d", name="n", config={"dataset_type": "supervised"})


def started(attempt: int) -> RunStarted:
    return RunStarted(run_id="r", attempt=attempt, trainer_id=f"t{attempt}")


def checkpoint(step: int, attempt: int = 1) -> CheckpointSaved:
    ref = ObjectRef(bucket="b", name=f"step-{step}", sha256="0" * 64, size=1)
    return CheckpointSaved(run_id="r", attempt=attempt, step=step, checkpoint=ref)


def completed(attempt: int) -> RunCompleted:
    return RunCompleted(run_id="r", attempt=attempt, final_loss=1.0, steps=3, seconds=1.0, adapter_id="a")


def test_a_run_moves_from_queued_to_running_to_completed() -> None:
    assert runs.fold([REQUESTED]) == runs.RunState()
    assert runs.fold([REQUESTED, started(1)]).status is RunStatus.RUNNING
    state = runs.fold([REQUESTED, started(1), LossReported(run_id="r", attempt=1, step=1, epoch=1, loss=2.0),
                       completed(1)])
    assert (state.status, state.attempt, state.finished) == (RunStatus.COMPLETED, 1, True)


def test_nothing_changes_a_finished_run() -> None:
    failed = runs.fold([REQUESTED, started(1), RunFailed(run_id="r", attempt=1, error="out of memory")])
    late = [started(2), completed(1), RunCancelRequested(run_id="r"), RunCancelled(run_id="r", attempt=2)]
    assert runs.fold([REQUESTED, started(1), RunFailed(run_id="r", attempt=1, error="out of memory"), *late]) == failed
    assert (failed.status, failed.error) == (RunStatus.FAILED, "out of memory")


def test_a_late_start_of_an_earlier_attempt_does_not_take_over() -> None:
    state = runs.fold([REQUESTED, started(2), started(1)])
    assert (state.status, state.attempt) == (RunStatus.RUNNING, 2)


def test_an_attempts_failure_is_kept_until_the_next_attempt_starts() -> None:
    failed_once = [REQUESTED, started(1), RunAttemptFailed(run_id="r", attempt=1, error="OSError: disk full")]
    assert runs.fold(failed_once).error == "OSError: disk full"
    assert runs.fold(failed_once).status is RunStatus.RUNNING
    assert runs.fold([*failed_once, started(2)]).error is None


def test_the_latest_checkpoint_is_the_one_to_resume_from() -> None:
    state = runs.fold([REQUESTED, started(1), checkpoint(100), checkpoint(200), started(2), checkpoint(150, 2)])
    assert state.checkpoint == checkpoint(200)


def test_cancelling_a_queued_run_cancels_it_at_once_and_a_running_one_asks_its_trainer() -> None:
    assert runs.cancel("r", RunStatus.QUEUED) == [RunCancelRequested(run_id="r"), RunCancelled(run_id="r", attempt=0)]
    assert runs.cancel("r", RunStatus.RUNNING) == [RunCancelRequested(run_id="r")]
    for status in runs.FINISHED:
        with pytest.raises(runs.RunAlreadyFinished, match=f"run 'r' is already {status}"):
            runs.cancel("r", status)


def test_a_delivery_trains_resumes_cancels_or_gives_up_as_the_history_says() -> None:
    def take(history: list, attempt: int = 1, cancel_seen: bool = False):
        return runs.take_delivery(runs.fold(history), "r", attempt, max_attempts=2, cancel_seen=cancel_seen)

    assert take([REQUESTED]) == runs.Train(resume_from=None)
    assert take([REQUESTED, started(1), checkpoint(10)], attempt=2) == runs.Train(resume_from=checkpoint(10))
    assert take([REQUESTED, started(1), completed(1)], attempt=2) == runs.Skip()
    assert take([REQUESTED], cancel_seen=True) == runs.Finish(RunCancelled(run_id="r", attempt=0))
    assert take([REQUESTED, started(1), RunCancelRequested(run_id="r")], attempt=2) == runs.Finish(
        RunCancelled(run_id="r", attempt=1))
    gave_up = take([REQUESTED, started(1), started(2), RunAttemptFailed(run_id="r", attempt=2, error="E: x")], attempt=3)
    assert gave_up == runs.Finish(RunFailed(
        run_id="r", attempt=2, error="gave up after 2 attempts: the last one failed in the trainer with E: x"))
    crashed = take([REQUESTED, started(1), started(2)], attempt=3)
    assert crashed.event.error.startswith("gave up after 2 attempts: each trainer that took this run stopped")


def test_attempts_handed_back_by_stopping_trainers_do_not_count_as_failed() -> None:
    def take(history: list, attempt: int):
        return runs.take_delivery(runs.fold(history), "r", attempt, max_attempts=3, cancel_seen=False)

    # three graceful restarts, each after a checkpoint: the fourth delivery still trains
    history = [REQUESTED]
    for attempt in (1, 2, 3):
        history += [started(attempt), checkpoint(10 * attempt, attempt), RunHandedBack(run_id="r", attempt=attempt)]
    assert take(history, attempt=4) == runs.Train(resume_from=checkpoint(30, 3))
    # three attempts that died count, whichever hand-backs came between them
    died = [*history, started(4), started(5), started(6)]
    assert isinstance(take(died, attempt=7), runs.Finish)
    assert take(died[:-1], attempt=6) == runs.Train(resume_from=checkpoint(30, 3))


def allowed_statuses(table: str) -> set[str]:
    """The values the read models' CHECK lets into `table`'s status column."""
    sql = "\n".join(path.read_text() for path in sorted(MIGRATIONS.glob("*.sql")))
    [definition] = re.findall(rf"CREATE TABLE {table} \((.*?)\n\);", sql, flags=re.S)
    [allowed] = re.findall(r"status\s+text NOT NULL CHECK \(status IN \(([^)]*)\)\)", definition)
    return {value.strip().strip("'") for value in allowed.split(",")}


def test_the_read_models_status_check_allows_exactly_the_runs_statuses() -> None:
    assert allowed_statuses("runs") == set(RunStatus)
