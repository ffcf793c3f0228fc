"""The lives of generations, comparisons and samples' feedback, as pure folds and decisions."""
from __future__ import annotations

import hashlib
import itertools

import pytest

from test_run_life import allowed_statuses
from events import comparisons, generations, samples
from events.base import AudioFile
from events.catalogue import (
    GenerationCancelled, GenerationCancelRequested, GenerationCompleted, GenerationFailed, GenerationHandedBack,
    GenerationStarted, SampleFavorited, SampleGenerated, SampleRated, SampleTagged, SampleUnfavorited, SampleUntagged,
)
from events.generations import GenerationStatus


def sample(generation_id: str, index: int) -> SampleGenerated:
    name = f"{generation_id}-{index}.wav"
    audio = AudioFile(bucket="ns-samples", name=name, sha256=hashlib.sha256(name.encode()).hexdigest(), size=10,
                      filename=name, format="WAV", duration_seconds=1.0, sample_rate=32_000, channels=1)
    return SampleGenerated(generation_id=generation_id, sample_id=generations.sample_id(generation_id, index),
                           index=index, audio=audio, seed=7, seconds_taken=0.5)


def test_a_generation_moves_forward_only():
    state = generations.fold([
        GenerationStarted(generation_id="g", attempt=1, worker_id="w1"),
        sample("g", 0),
        GenerationStarted(generation_id="g", attempt=2, worker_id="w2"),
        GenerationStarted(generation_id="g", attempt=1, worker_id="w1"),  # late, of the earlier attempt
        sample("g", 1),
        GenerationCompleted(generation_id="g", attempt=2, seconds_taken=3.0),
        GenerationFailed(generation_id="g", attempt=2, error="too late"),
        GenerationCancelled(generation_id="g", attempt=2),
    ])
    assert (state.status, state.attempt, state.error, state.samples) == (GenerationStatus.COMPLETED, 2, None, {0, 1})


def test_sample_ids_are_the_same_on_every_attempt_and_differ_per_index():
    assert generations.sample_id("g", 0) == generations.sample_id("g", 0)
    assert len({generations.sample_id(g, i) for g in ("g", "h") for i in range(8)}) == 16


def test_cancel_is_at_once_when_queued_asked_when_running_refused_when_finished():
    assert generations.cancel("g", GenerationStatus.QUEUED) == [
        GenerationCancelRequested(generation_id="g"), GenerationCancelled(generation_id="g", attempt=0)]
    assert generations.cancel("g", GenerationStatus.RUNNING) == [GenerationCancelRequested(generation_id="g")]
    for status in generations.FINISHED:
        with pytest.raises(generations.GenerationAlreadyFinished, match=f"generation 'g' is already {status}"):
            generations.cancel("g", status)


def test_a_worker_skips_finished_requests_honours_cancels_and_gives_up_after_its_attempts():
    queued = generations.GenerationState()
    assert generations.take_delivery(queued, "g", 1, 3, cancel_seen=False) == generations.Generate()
    assert generations.take_delivery(queued, "g", 1, 3, cancel_seen=True) == generations.Finish(
        GenerationCancelled(generation_id="g", attempt=0))
    gave_up = generations.take_delivery(queued, "g", 4, 3, cancel_seen=False)
    assert isinstance(gave_up.event, GenerationFailed) and "gave up after 3 attempts" in gave_up.event.error
    done = generations.fold([GenerationCompleted(generation_id="g", attempt=1, seconds_taken=1.0)])
    assert generations.take_delivery(done, "g", 2, 3, cancel_seen=True) == generations.Skip()


def test_attempts_handed_back_by_stopping_workers_do_not_count_as_failed():
    def take(history: list, attempt: int):
        return generations.take_delivery(generations.fold(history), "g", attempt, max_attempts=3, cancel_seen=False)

    def started(attempt: int) -> GenerationStarted:
        return GenerationStarted(generation_id="g", attempt=attempt, worker_id=f"w{attempt}")

    # three graceful restarts: the fourth delivery still generates
    history = []
    for attempt in (1, 2, 3):
        history += [started(attempt), GenerationHandedBack(generation_id="g", attempt=attempt)]
    assert take(history, attempt=4) == generations.Generate()
    # three attempts whose workers died count, whichever hand-backs came between them
    died = [*history, started(4), started(5), started(6)]
    gave_up = take(died, attempt=7)
    assert isinstance(gave_up.event, GenerationFailed) and "gave up after 3 attempts" in gave_up.event.error
    assert take(died[:-1], attempt=6) == generations.Generate()


def test_a_later_rating_of_a_criterion_replaces_the_earlier_and_tags_and_favourite_follow_their_last_change():
    feedback = samples.fold([
        SampleRated(sample_id="s", rating_id="1", criterion="overall", rating=2),
        SampleRated(sample_id="s", rating_id="2", criterion="melody", rating=5),
        SampleRated(sample_id="s", rating_id="3", criterion="overall", rating=4),
        SampleTagged(sample_id="s", change_id="4", tag="warm"),
        SampleTagged(sample_id="s", change_id="5", tag="drums"),
        SampleUntagged(sample_id="s", change_id="6", tag="warm"),
        SampleFavorited(sample_id="s", change_id="7"),
        SampleUnfavorited(sample_id="s", change_id="8"),
        SampleFavorited(sample_id="s", change_id="9"),
    ])
    assert feedback == samples.Feedback(ratings={"overall": 4, "melody": 5}, tags=frozenset({"drums"}), favorite=True)


def test_a_comparison_generates_both_sides_of_a_prompt_with_one_seed():
    ids = (f"g{n}" for n in itertools.count())
    planned = comparisons.plan_generations(3, seed=100, new_id=lambda: next(ids))
    assert [(g.side, g.prompt_index, g.seed) for g in planned] == [
        ("a", 0, 100), ("b", 0, 100), ("a", 1, 101), ("b", 1, 101), ("a", 2, 102), ("b", 2, 102)]
    firsts = iter("abba")
    pairs = comparisons.plan_pairs(2, 2, draw_first=lambda: next(firsts))
    assert [(p.prompt_index, p.sample_index, p.first) for p in pairs] == [(0, 0, "a"), (0, 1, "b"), (1, 0, "b"), (1, 1, "a")]


@pytest.mark.parametrize("first, choice, outcome", [
    ("a", "first", "a"), ("a", "second", "b"), ("b", "first", "b"), ("b", "second", "a"),
    ("a", "equal", "tie"), ("b", "equal", "tie"),
])
def test_a_choice_means_a_side_through_the_recorded_order(first, choice, outcome):
    assert comparisons.outcome(first, choice) == outcome


def test_a_vote_needs_a_ready_unvoted_pair():
    ready = comparisons.PairState(pair_id="p", first="b", ready=True, outcome=None)
    assert comparisons.vote("c", ready, "first").outcome == "b"
    with pytest.raises(comparisons.PairNotReady):
        comparisons.vote("c", comparisons.PairState(pair_id="p", first="a", ready=False, outcome=None), "first")
    with pytest.raises(comparisons.PairAlreadyVoted):
        comparisons.vote("c", comparisons.PairState(pair_id="p", first="a", ready=True, outcome="tie"), "first")


def test_a_comparison_is_generating_then_voting_then_done():
    assert comparisons.status(generations_active=1, pairs_ready=2, pairs_voted=0) == "generating"
    assert comparisons.status(generations_active=0, pairs_ready=2, pairs_voted=1) == "voting"
    assert comparisons.status(generations_active=0, pairs_ready=2, pairs_voted=2) == "done"


def test_the_read_models_status_check_allows_exactly_the_generations_statuses() -> None:
    assert allowed_statuses("generations") == set(GenerationStatus)
