"""A comparison's life, stated once: how it is planned (one generation request per prompt and side,
both sides with the same seed per prompt; each pair's blind order drawn once and recorded), what a
vote means, and what state a comparison is in.

A pair is (prompt, sample index): it is ready once both sides' samples of that prompt and index
exist, and it takes one vote. `first` tells which side was shown first, so a voter's
first/second/equal maps to a/b/tie the same way whenever the events are read again.
"""
from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from events.catalogue import (
    Choice, ComparisonGeneration, ComparisonPair, ComparisonVoted, Outcome, Side,
)


class ComparisonStatus(enum.StrEnum):
    GENERATING = "generating"  # some of its generations are still queued or running
    VOTING = "voting"  # generated; ready pairs wait for votes
    DONE = "done"  # generated, and every ready pair is voted


def plan_generations(prompt_count: int, seed: int, new_id: Callable[[], str]) -> list[ComparisonGeneration]:
    """One request per prompt and side; prompt i is generated with seed + i on both sides, so the
    sides differ by their adapters alone."""
    return [ComparisonGeneration(generation_id=new_id(), side=side, prompt_index=index, seed=seed + index)
            for index in range(prompt_count) for side in ("a", "b")]


def plan_pairs(prompt_count: int, samples_per_prompt: int, draw_first: Callable[[], Side]) -> list[ComparisonPair]:
    return [ComparisonPair(pair_id=str(uuid.uuid4()), prompt_index=prompt, sample_index=sample, first=draw_first())
            for prompt in range(prompt_count) for sample in range(samples_per_prompt)]


def outcome(first: Side, choice: Choice) -> Outcome:
    """The side a voter's choice means, given which side was shown first."""
    if choice == "equal":
        return "tie"
    second: Side = "b" if first == "a" else "a"
    return first if choice == "first" else second


def status(generations_active: int, pairs_ready: int, pairs_voted: int) -> ComparisonStatus:
    if generations_active:
        return ComparisonStatus.GENERATING
    return ComparisonStatus.VOTING if pairs_voted < pairs_ready else ComparisonStatus.DONE


# --- commands -----------------------------------------------------------------------------------
class PairNotReady(Exception):
    pass


class PairAlreadyVoted(Exception):
    pass


@dataclass(frozen=True)
class PairState:
    pair_id: str
    first: Side
    ready: bool
    outcome: Outcome | None  # None until voted


def vote(comparison_id: str, pair: PairState, choice: Choice) -> ComparisonVoted:
    """The vote on a ready, unvoted pair."""
    if not pair.ready:
        raise PairNotReady(f"pair '{pair.pair_id}' is not ready: both of its samples are not generated yet")
    if pair.outcome is not None:
        raise PairAlreadyVoted(f"pair '{pair.pair_id}' is already voted ({pair.outcome})")
    return ComparisonVoted(comparison_id=comparison_id, pair_id=pair.pair_id, choice=choice,
                           outcome=outcome(pair.first, choice))
