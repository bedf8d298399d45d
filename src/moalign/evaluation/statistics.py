"""Uncertainty of the study's numbers: bootstrap confidence intervals, paired differences and the
convergence measures of learning curves.

Methods:
- **Percentile bootstrap** (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 13):
  resample the n units with replacement `n_boot` times, take the mean of each resample, and report
  the (1 − level)/2 and (1 + level)/2 quantiles of those means as the interval. The units are
  whatever the caller flattens (prompts × seeds × generation runs); with `groups` the bootstrap
  resamples whole clusters instead (Davison & Hinkley 1997, §3.8, the cluster bootstrap), e.g. the
  training seeds, so that the prompts inside one seed move together.
- **Paired difference**: the same percentile bootstrap applied to the per-unit differences a − b of
  two systems measured on the same units (same prompt, seed and run), which removes the
  between-prompt variance both systems share.
- **Steps to a fraction of the final value**: the first validation step at which a learning curve
  has covered `fraction` of its way from the first validation to the final one (see
  `steps_to_fraction`).

Every function is pure (numpy only) and deterministic for a given `seed`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)

# Resampled means are drawn in blocks of at most this many indices, to bound memory.
_BLOCK = 1 << 20


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval over `n` units.

    `lo` and `hi` are NaN when the interval cannot be estimated (fewer than 2 units or clusters).
    """

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def known(self) -> bool:
        """True when the interval was estimated (both bounds finite)."""
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    def excludes_zero(self) -> int:
        """+1 when the whole interval lies above 0, −1 when below, 0 when it contains 0 or is
        unknown."""
        if not self.known:
            return 0
        if self.lo > 0:
            return 1
        if self.hi < 0:
            return -1
        return 0

    def format(self, digits: int = 3) -> str:
        """``"0.512 [0.480, 0.545]"``; ``"0.512 [n/a]"`` when the interval is unknown."""
        if not self.known:
            return f"{self.mean:.{digits}f} [n/a]"
        return f"{self.mean:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


def _as_values(values: Sequence[float] | np.ndarray, name: str = "values") -> np.ndarray:
    """1-D float64 array of finite values; ValueError otherwise."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError(f"{name} is empty: a confidence interval needs at least one unit")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} holds NaN or infinite values: drop or fix those units first")
    return x


def _check_level(level: float, n_boot: int) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


def _resampled_means(
    sums: np.ndarray, counts: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Means of `n_boot` resamples of the G clusters (sums (G,), counts (G,)) -> (n_boot,).

    Each resample draws G cluster indices uniformly with replacement (rng.integers(0, G)), row by
    row, so the stream of indices does not depend on the block size.
    """
    g = sums.size
    rows = max(1, _BLOCK // g)
    out = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, g, size=(stop - start, g))  # (rows, G)
        out[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    return out


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> Interval:
    """Mean of `values` with its percentile-bootstrap confidence interval (Efron & Tibshirani 1993).

    values: (n,) one number per unit (e.g. one prompt's reward in one seed and run).
    groups: optional (n,) cluster label per unit; the bootstrap then resamples clusters with
      replacement and pools their units (cluster bootstrap), so the interval reflects the
      variation between clusters (e.g. training seeds) rather than treating units as independent.
    Returns Interval(mean, lo, hi, n) with n = number of units; lo = hi = NaN when fewer than 2
    units (or clusters) make the interval undefined. The resampling uses
    numpy.random.default_rng(seed).integers(0, G, size=(n_boot, G)) for G units or clusters, and
    the bounds are numpy.quantile's (linear) quantiles of the resampled means.
    """
    _check_level(level, n_boot)
    x = _as_values(values)
    mean = math.fsum(x.tolist()) / x.size
    if groups is None:
        sums, counts = x, np.ones_like(x)
    else:
        if len(groups) != x.size:
            raise ValueError(f"groups has {len(groups)} labels for {x.size} values")
        labels = {g: i for i, g in enumerate(dict.fromkeys(groups))}
        codes = np.array([labels[g] for g in groups])
        sums = np.bincount(codes, weights=x)  # (G,)
        counts = np.bincount(codes).astype(np.float64)  # (G,)
    if sums.size < 2:
        return Interval(mean, math.nan, math.nan, int(x.size))
    means = _resampled_means(sums, counts, n_boot, np.random.default_rng(seed))
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(mean, float(lo), float(hi), int(x.size))


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> Interval:
    """Mean of a − b over paired units with its percentile-bootstrap CI.

    a, b: (n,) the two systems' values on the same units in the same order (same prompt, seed and
    generation run; `align_pairs` builds them from keyed values). The bootstrap resamples the
    units (or `groups` clusters) of the differences d = a − b, so both systems move together.
    """
    xa, xb = _as_values(a, "a"), _as_values(b, "b")
    if xa.size != xb.size:
        raise ValueError(f"paired values differ in length: {xa.size} vs {xb.size}")
    return bootstrap_ci(xa - xb, n_boot=n_boot, level=level, seed=seed, groups=groups)


def align_pairs(
    a: Mapping[K, float], b: Mapping[K, float]
) -> tuple[list[K], list[float], list[float]]:
    """The units two systems share, in `a`'s order: (keys, a values, b values).

    Units keyed e.g. by (seed, run, prompt index); units only one system has are dropped.
    """
    keys = [k for k in a if k in b]
    return keys, [float(a[k]) for k in keys], [float(b[k]) for k in keys]


def final_value(values: Sequence[float] | np.ndarray, window: int = 3) -> float:
    """The final value of a learning curve: the mean of its last `window` points (fewer if the
    curve is shorter), which damps the noise of a single validation."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    x = _as_values(values)
    return float(x[-window:].mean())


def tail_std(values: Sequence[float] | np.ndarray, window: int = 3) -> float:
    """Stability of a learning curve: the population std of its last `window` points (0.0 for one
    point)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    x = _as_values(values)
    return float(x[-window:].std())


def steps_to_fraction(
    steps: Sequence[int] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    fraction: float = 0.9,
    window: int = 3,
    origin: Literal["first", "zero"] = "first",
) -> int | None:
    """First step at which a (higher-is-better) validation curve reaches `fraction` of its final
    value.

    final = `final_value(values, window)`, the mean of the last `window` validations.
    origin="first" (default): the target is first + fraction × (final − first), i.e. `fraction`
      of the gain over the first validation (normally step 0, the untrained policy). This is
      invariant to shifting the reward and so is meaningful for negative or zero rewards. A curve
      that does not end above its first validation (final <= first) has no gain to reach: None.
    origin="zero": the target is fraction × final, the literal fraction of the final value; only
      meaningful when final > 0, so None otherwise.
    The step returned is the first `steps[i]` with values[i] >= target (the first crossing, even if
    the curve dips below again later). Because final is a mean of the last points, a positive gain
    is always reached by the end of the curve.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    x = _as_values(values)
    s = np.asarray(steps).reshape(-1)
    if s.size != x.size:
        raise ValueError(f"steps has {s.size} entries for {x.size} values")
    final = final_value(x, window)
    if origin == "first":
        if final <= x[0]:
            return None
        target = x[0] + fraction * (final - x[0])
    elif origin == "zero":
        if final <= 0.0:
            return None
        target = fraction * final
    else:
        raise ValueError(f"origin must be 'first' or 'zero', got {origin!r}")
    hits = np.flatnonzero(x >= target - 1e-12 * max(1.0, abs(target)))
    return int(s[hits[0]]) if hits.size else None
