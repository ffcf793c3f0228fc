"""Comparison results against values computed by hand."""
from __future__ import annotations

import pytest

from services.api.statistics import Results, results, sign_test_p_value, wilson_interval


def test_no_decisive_vote_has_no_rate_interval_or_test():
    assert results(["tie", "tie"]) == Results(votes=2, a_wins=0, b_wins=0, ties=2, a_win_rate=None,
                                              a_win_rate_ci=None, p_value=None)


def test_eight_wins_of_ten_with_two_ties():
    # a 8, b 2, ties 2: rate 0.8; sign test 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 2 * 56 / 1024
    # Wilson (z = 1.959964, z^2 = 3.841459): centre (0.8 + 0.192073) / 1.384146 = 0.716740,
    # half 1.959964 * sqrt(0.016 + 0.009604) / 1.384146 = 0.226578
    found = results(["a"] * 8 + ["b"] * 2 + ["tie"] * 2)
    assert (found.votes, found.a_wins, found.b_wins, found.ties) == (12, 8, 2, 2)
    assert found.a_win_rate == 0.8
    assert found.p_value == pytest.approx(112 / 1024)
    assert found.a_win_rate_ci == pytest.approx((0.490162, 0.943317), abs=1e-6)


def test_the_sign_test_by_hand():
    assert sign_test_p_value(5, 5) == 1.0  # 2 * 638/1024 capped at 1
    assert sign_test_p_value(10, 0) == pytest.approx(2 / 1024)
    assert sign_test_p_value(1, 6) == pytest.approx(2 * (1 + 7) / 128)
    assert sign_test_p_value(6, 1) == sign_test_p_value(1, 6)


def test_wilson_interval_at_the_edges_stays_in_zero_one():
    low, high = wilson_interval(3, 3)  # centre (1 + 0.640243) / 2.280486 = 0.719251, half 1.959964 * 0.326661 / 2.280486 = 0.280749
    assert (low, high) == (pytest.approx(0.438503, abs=1e-6), 1.0)
    assert wilson_interval(0, 1) == (0.0, pytest.approx(0.793451, abs=1e-6))
