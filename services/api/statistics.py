"""A comparison's results from its votes: counts, A's win rate with its 95 % Wilson interval, and
the exact two-sided sign-test p-value. Ties are left out of the rate, the interval and the test:
they say neither side is better."""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile


@dataclass(frozen=True)
class Results:
    votes: int
    a_wins: int
    b_wins: int
    ties: int
    a_win_rate: float | None  # None until a vote is not a tie
    a_win_rate_ci: tuple[float, float] | None
    p_value: float | None


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def sign_test_p_value(a_wins: int, b_wins: int) -> float:
    """P(a split at least as uneven as this one) when each decisive vote is a fair coin."""
    trials = a_wins + b_wins
    tail = sum(math.comb(trials, k) for k in range(min(a_wins, b_wins) + 1))
    return min(1.0, 2 * tail / 2**trials)


def results(outcomes: Iterable[str]) -> Results:
    """From each vote's outcome: 'a', 'b' or 'tie'."""
    outcomes = list(outcomes)
    a_wins, b_wins, ties = outcomes.count("a"), outcomes.count("b"), outcomes.count("tie")
    decisive = a_wins + b_wins
    if decisive == 0:
        return Results(len(outcomes), a_wins, b_wins, ties, None, None, None)
    return Results(len(outcomes), a_wins, b_wins, ties, a_wins / decisive, wilson_interval(a_wins, decisive),
                   sign_test_p_value(a_wins, b_wins))
