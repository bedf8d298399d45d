"""Bootstrap intervals, paired differences and convergence steps against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moalign.evaluation.statistics import (
    Interval,
    align_pairs,
    bootstrap_ci,
    final_value,
    paired_difference,
    steps_to_fraction,
    tail_std,
)


def test_bootstrap_matches_numpy_percentile_on_the_same_resample() -> None:
    x = np.array([0.1, 0.4, 0.35, 0.8, 0.55, 0.2, 0.9])
    idx = np.random.default_rng(7).integers(0, x.size, size=(500, x.size))
    means = x[idx].mean(axis=1)
    ci = bootstrap_ci(x, n_boot=500, level=0.9, seed=7)
    assert ci.lo == pytest.approx(np.percentile(means, 5.0), abs=1e-12)
    assert ci.hi == pytest.approx(np.percentile(means, 95.0), abs=1e-12)
    assert ci.mean == pytest.approx(0.4714285714285714)
    assert ci.n == 7


def test_bootstrap_agrees_with_normal_theory_on_a_large_sample() -> None:
    x = np.random.default_rng(3).exponential(2.0, size=4000)
    ci = bootstrap_ci(x, n_boot=2000, level=0.95, seed=1)
    half = 1.959964 * x.std(ddof=1) / math.sqrt(x.size)
    assert ci.lo == pytest.approx(x.mean() - half, abs=0.15 * half)
    assert ci.hi == pytest.approx(x.mean() + half, abs=0.15 * half)


def test_constant_values_give_a_zero_width_interval_and_one_unit_none() -> None:
    assert bootstrap_ci([0.25, 0.25, 0.25]) == Interval(0.25, 0.25, 0.25, 3)
    one = bootstrap_ci([0.7])
    assert one.mean == 0.7 and math.isnan(one.lo) and not one.known
    assert one.excludes_zero() == 0


def test_cluster_bootstrap_resamples_whole_groups() -> None:
    # two clusters, means 0 (3 units) and 1 (1 unit): every resample pools whole clusters,
    # so the resampled means can only be 0, 1/4 (one of each, weighted by units) or 1
    values = [0.0, 0.0, 0.0, 1.0]
    ci = bootstrap_ci(values, n_boot=400, level=0.5, seed=0, groups=["a", "a", "a", "b"])
    assert ci.mean == 0.25
    assert {ci.lo, ci.hi} <= {0.0, 0.25, 1.0}
    codes = np.random.default_rng(0).integers(0, 2, size=(400, 2))
    sums, counts = np.array([0.0, 1.0]), np.array([3.0, 1.0])
    means = sums[codes].sum(axis=1) / counts[codes].sum(axis=1)
    assert ci.lo == pytest.approx(np.quantile(means, 0.25))
    assert ci.hi == pytest.approx(np.quantile(means, 0.75))
    single = bootstrap_ci([0.1, 0.2], groups=["s", "s"])
    assert not single.known


def test_block_size_does_not_change_the_resample(monkeypatch: pytest.MonkeyPatch) -> None:
    import moalign.evaluation.statistics as stats

    x = np.linspace(0.0, 1.0, 37) ** 2
    whole = bootstrap_ci(x, n_boot=300, seed=5)
    monkeypatch.setattr(stats, "_BLOCK", 37 * 7)
    assert bootstrap_ci(x, n_boot=300, seed=5) == whole


def test_paired_difference_is_the_bootstrap_of_the_differences() -> None:
    a = np.array([0.5, 0.6, 0.7, 0.65, 0.55])
    b = np.array([0.4, 0.58, 0.5, 0.6, 0.5])
    d = paired_difference(a, b, n_boot=800, seed=2)
    assert d.mean == pytest.approx(0.084)  # (0.1 + 0.02 + 0.2 + 0.05 + 0.05) / 5
    idx = np.random.default_rng(2).integers(0, 5, size=(800, 5))
    means = (a - b)[idx].mean(axis=1)
    assert d.lo == pytest.approx(np.quantile(means, 0.025))
    assert d.hi == pytest.approx(np.quantile(means, 0.975))
    assert d.excludes_zero() == 1
    assert paired_difference(b, a, n_boot=800, seed=2).excludes_zero() == -1
    with pytest.raises(ValueError, match="length"):
        paired_difference([1.0, 2.0], [1.0])


def test_pairing_removes_shared_prompt_variance() -> None:
    rng = np.random.default_rng(0)
    prompt_effect = rng.normal(0.0, 1.0, 200)
    a = prompt_effect + 0.1 + rng.normal(0, 0.05, 200)
    b = prompt_effect + rng.normal(0, 0.05, 200)
    paired = paired_difference(a, b)
    unpaired_half = 1.96 * math.sqrt(a.var(ddof=1) / 200 + b.var(ddof=1) / 200)
    assert paired.excludes_zero() == 1
    assert paired.hi - paired.lo < 0.2 * unpaired_half


def test_align_pairs_keeps_shared_units_in_order() -> None:
    keys, a, b = align_pairs({(0, 1): 1.0, (0, 2): 2.0, (1, 1): 3.0}, {(1, 1): 30.0, (0, 1): 10.0})
    assert keys == [(0, 1), (1, 1)] and a == [1.0, 3.0] and b == [10.0, 30.0]


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([0.1, float("nan")])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([0.1, 0.2], level=1.5)


def test_steps_to_fraction_hand_computed() -> None:
    steps = [0, 10, 20, 30, 40]
    values = [0.1, 0.5, 0.8, 0.9, 0.92]
    # final = (0.8 + 0.9 + 0.92) / 3 = 0.8733; target = 0.1 + 0.9 * 0.7733 = 0.796 -> step 20
    assert steps_to_fraction(steps, values) == 20
    # literal fraction of the final value: 0.9 * 0.8733 = 0.786 -> step 20; at 0.5: 0.437 -> 10
    assert steps_to_fraction(steps, values, origin="zero") == 20
    assert steps_to_fraction(steps, values, fraction=0.5, origin="zero") == 10
    # window 1: final = 0.92, target = 0.1 + 0.9 * 0.82 = 0.838 -> step 30
    assert steps_to_fraction(steps, values, window=1) == 30


def test_steps_to_fraction_negative_rewards_and_no_gain() -> None:
    steps = [0, 5, 10, 15]
    # negative rewards improving from -2 to -1: gain 1, target -2 + 0.9 = -1.1 -> step 10
    assert steps_to_fraction(steps, [-2.0, -1.5, -1.05, -1.0], window=1) == 10
    assert steps_to_fraction(steps, [-2.0, -1.5, -1.05, -1.0], origin="zero") is None
    assert steps_to_fraction(steps, [0.5, 0.4, 0.3, 0.3]) is None
    assert steps_to_fraction(steps, [0.0, 0.0, 0.0, 0.0], origin="zero") is None
    # first crossing counts even when the curve dips afterwards
    assert steps_to_fraction(steps, [0.0, 1.0, 0.2, 1.0], window=1) == 5


def test_final_value_and_tail_std() -> None:
    assert final_value([1.0, 2.0, 3.0, 5.0], window=2) == 4.0
    assert final_value([2.0], window=3) == 2.0
    assert tail_std([9.0, 1.0, 3.0], window=2) == 1.0
    assert tail_std([4.0]) == 0.0


def test_interval_format() -> None:
    assert Interval(0.5, 0.4, 0.6, 10).format(2) == "0.50 [0.40, 0.60]"
    assert Interval(0.5, math.nan, math.nan, 1).format(2) == "0.50 [n/a]"
