"""Metrics (EMORL §5.3, MOLMA §4.5.1) against hand-computed values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from moalign.evaluation.metrics import (
    distinct_n,
    diversity2,
    edit_rate,
    hypervolume,
    levenshtein,
    mean_std,
    pareto_front,
    tokenize_words,
    win_rates,
)


def test_tokenize_words():
    assert tokenize_words("Don't worry—it's self-care!") == ["don't", "worry", "it's", "self-care"]
    assert tokenize_words("Fine,thanks!  OK.") == ["fine", "thanks", "ok"]
    assert tokenize_words("  ...  ") == []


def test_distinct_n_and_diversity2():
    # bigrams: (i feel) (feel sad) (sad i) (i feel) (feel sad) -> 3 distinct / 5
    assert distinct_n("I feel sad, I feel sad.", 2) == pytest.approx(3 / 5)
    assert distinct_n("the cat sat on the mat", 2) == 1.0
    assert distinct_n("the cat sat on the mat", 1) == pytest.approx(5 / 6)
    assert distinct_n("Hello!", 2) == 0.0
    assert distinct_n("", 2) == 0.0
    responses = ["I feel sad, I feel sad.", "the cat sat on the mat", "hello"]
    assert diversity2(responses) == pytest.approx((0.6 + 1.0 + 0.0) / 3)
    with pytest.raises(ValueError):
        diversity2([])


def test_edit_rate():
    # [i feel so alone] -> [you feel alone]: substitute i->you, delete so = 2, / max(4, 3)
    assert edit_rate("I feel so alone", "You feel alone") == pytest.approx(0.5)
    assert edit_rate("I feel sad.", "i feel SAD") == 0.0
    assert edit_rate("", "") == 0.0
    assert edit_rate("a b", "") == 1.0
    assert edit_rate("", "x y z") == 1.0
    assert levenshtein(list("kitten"), list("sitting")) == 3


def test_mean_std():
    mean, std = mean_std([1, 2, 3, 4])
    assert mean == 2.5 and std == pytest.approx(np.sqrt(5 / 3))  # sample std, ddof=1
    assert mean_std([3.0]) == (3.0, 0.0)
    with pytest.raises(ValueError):
        mean_std([])
    with pytest.raises(ValueError):
        mean_std([1.0, float("nan")])


def test_pareto_front():
    pts = [[1, 0], [0, 1], [0.5, 0.5], [0.4, 0.4], [1, 0], [0.5, 0.2]]
    assert pareto_front(pts) == [0, 1, 2, 4]  # duplicates of a front point are both kept
    pts3 = [[1, 1, 1], [1, 1, 0], [0, 0, 2], [0.5, 2, 0]]
    assert pareto_front(pts3) == [0, 2, 3]


def test_hypervolume_2d():
    # staircase (3,1), (2,2), (1,3) over ref (0,0): 3·1 + 2·1 + 1·1
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [0, 0]) == pytest.approx(6.0)
    assert hypervolume([[1, 3], [2, 2], [3, 1], [1, 1]], [0, 0]) == pytest.approx(6.0)
    # ref (1, 1): (1, 3) has zero width, (2, 2) adds 1 · 1, (3, 1.5) adds 1 · 0.5 beyond x = 2
    assert hypervolume([[1, 3], [2, 2], [3, 1.5]], [1, 1]) == pytest.approx(1.5)
    assert hypervolume([[1, -1]], [0, 0]) == 0.0  # not better than ref in every coordinate
    assert hypervolume([[2.0]], [0.5]) == 1.5


def test_hypervolume_3d_hand_examples():
    assert hypervolume([[1, 2, 3]], [0, 0, 0]) == pytest.approx(6.0)
    assert hypervolume([[2, 1, 1], [1, 2, 1]], [0, 0, 0]) == pytest.approx(3.0)
    # inclusion-exclusion: 3 · 2 - 3 · 1 + 1
    assert hypervolume([[2, 1, 1], [1, 2, 1], [1, 1, 2]], [0, 0, 0]) == pytest.approx(4.0)


def _inclusion_exclusion(points: np.ndarray, ref: np.ndarray) -> float:
    total = 0.0
    for r in range(1, len(points) + 1):
        for subset in itertools.combinations(points, r):
            total += (-1) ** (r + 1) * np.prod(np.min(subset, axis=0) - ref)
    return total


def test_hypervolume_3d_exact_matches_inclusion_exclusion_and_monte_carlo():
    rng = np.random.default_rng(0)
    pts = rng.random((7, 3))
    ref = np.zeros(3)
    exact = hypervolume(pts, ref)
    assert exact == pytest.approx(_inclusion_exclusion(pts, ref), rel=1e-12)
    n = 400_000
    mc = hypervolume(pts, ref, method="mc", n_samples=n, seed=1)
    box = np.prod(pts.max(axis=0))
    q = exact / box
    assert abs(mc - exact) < 5 * box * np.sqrt(q * (1 - q) / n)
    # non-zero reference point
    ref = np.array([0.1, 0.2, 0.05])
    inside = pts[np.all(pts > ref, axis=1)]
    assert hypervolume(pts, ref) == pytest.approx(_inclusion_exclusion(inside, ref), rel=1e-12)


def test_hypervolume_4d_monte_carlo_fallback():
    pts = [[2, 1, 1, 1], [1, 2, 1, 1]]
    hv = hypervolume(pts, [0, 0, 0, 0], n_samples=200_000, seed=0)
    assert hv == pytest.approx(3.0, abs=0.05)
    assert hv == hypervolume(pts, [0, 0, 0, 0], n_samples=200_000, seed=0)  # seeded
    with pytest.raises(ValueError):
        hypervolume(pts, [0, 0, 0, 0], method="exact")


def test_win_rates_with_ties():
    r = win_rates([3, 3, 3, 3], [1, 3, 5, 2])
    assert r == {"win": 2, "tie": 1, "loss": 1, "win_rate": pytest.approx(2.5 / 4)}
    r = win_rates([1.0, 2.0], [1.0, 2.0])
    assert r["tie"] == 2 and r["win_rate"] == 0.5
    r = win_rates([1.0, 2.0], [1.05, 1.0], tol=0.1)
    assert (r["win"], r["tie"], r["loss"]) == (1, 1, 0)
    with pytest.raises(ValueError):
        win_rates([1.0], [1.0, 2.0])
