"""Evaluation metrics (EMORL §5.3; MOLMA §4.5.1): diversity-2, edit rate, mean ± std, Pareto
front, hypervolume, win rates.

References: diversity-2 and edit rate are EMORL §5.3's lexical metrics; mean ± std over seeds and
generation runs follows EMORL §5.1 (5 seeds × 3 runs); Pareto front and hypervolume summarise the
weight points of the hierarchical grid search; win rates with ties counted as half are MOLMA's
per-prompt reward comparison of two models.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

_WORD_RE = re.compile(r"\w+(?:['’\-]\w+)*")


def tokenize_words(text: str) -> list[str]:
    """Lower-case word tokens used by `distinct_n` and `edit_rate`.

    A token is a maximal run of word characters (Unicode letters, digits, underscore), keeping
    internal apostrophes and hyphens (``"don't"``, ``"self-care"``). Whitespace and all other
    punctuation only separate tokens and are never tokens themselves, so ``"Fine,thanks!"`` gives
    ``["fine", "thanks"]``.
    """
    return _WORD_RE.findall(text.lower())


def distinct_n(text: str, n: int = 2) -> float:
    """Distinct n-grams / total n-grams of one response (`tokenize_words` tokens); 0.0 if none."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    tokens = tokenize_words(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return len(set(grams)) / len(grams)


def diversity2(responses: Sequence[str]) -> float:
    """Corpus diversity-2: mean over responses of `distinct_n(response, 2)` (EMORL §5.3)."""
    if len(responses) == 0:
        raise ValueError("diversity2 needs at least one response")
    return math.fsum(distinct_n(r, 2) for r in responses) / len(responses)


def levenshtein(a: Sequence[str], b: Sequence[str]) -> int:
    """Edit distance (insert / delete / substitute, unit costs) between two token sequences."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        cur = [i]
        for j, y in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def edit_rate(prompt: str, response: str) -> float:
    """Word-level Levenshtein distance between prompt and response / the longer length (EMORL §5.3).

    Uses `tokenize_words`; 0.0 when both are empty. 1.0 means nothing was kept in place.
    """
    a, b = tokenize_words(prompt), tokenize_words(response)
    longest = max(len(a), len(b))
    if longest == 0:
        return 0.0
    return levenshtein(a, b) / longest


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and *sample* standard deviation (ddof=1) of the values; std is 0.0 for one value.

    Sample std matches reporting "mean ± std over seeds × runs" (EMORL §5.1: 5 seeds × 3 runs) as
    an estimate of the spread of a new run. Empty input or NaN is an error.
    """
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 0:
        raise ValueError("mean_std needs at least one value")
    if np.isnan(arr).any():
        raise ValueError("mean_std got NaN")
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return mean, std


def _as_matrix(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    arr = np.asarray(points, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"points must be an (N, K) matrix, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError("points contain NaN")
    return arr


def pareto_front(points: Sequence[Sequence[float]] | np.ndarray) -> list[int]:
    """Indices (ascending) of the non-dominated rows of an ``(N, K)`` higher-is-better matrix.

    Row ``a`` dominates ``b`` when ``a >= b`` everywhere and ``a > b`` somewhere; exact duplicates
    do not dominate each other, so all copies of a front point are kept.
    """
    arr = _as_matrix(points)
    front: list[int] = []
    for i, row in enumerate(arr):
        dominated = np.all(arr >= row, axis=1) & np.any(arr > row, axis=1)
        if not dominated.any():
            front.append(i)
    return front


def _hv2d(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-D hypervolume: sweep points by decreasing x, add the new strip of each."""
    order = np.argsort(-points[:, 0], kind="stable")
    area, best_y = 0.0, ref[1]
    for x, y in points[order]:
        if y > best_y:
            area += (x - ref[0]) * (y - best_y)
            best_y = y
    return float(area)


def _hv3d(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact 3-D hypervolume by slicing along the 3rd axis (HSO): Σ slab height × 2-D area."""
    zs = np.unique(points[:, 2])[::-1]  # distinct z levels, decreasing
    volume = 0.0
    for i, z in enumerate(zs):
        z_next = zs[i + 1] if i + 1 < len(zs) else ref[2]
        active = points[points[:, 2] >= z]
        volume += (z - z_next) * _hv2d(active[:, :2], ref[:2])
    return float(volume)


def _hv_monte_carlo(points: np.ndarray, ref: np.ndarray, n_samples: int, seed: int) -> float:
    """Monte-Carlo hypervolume: dominated fraction of uniform samples in ``[ref, max(points)]``."""
    rng = np.random.default_rng(seed)
    upper = points.max(axis=0)
    box = float(np.prod(upper - ref))
    hits, chunk = 0, 65_536
    for start in range(0, n_samples, chunk):
        m = min(chunk, n_samples - start)
        samples = ref + rng.random((m, ref.size)) * (upper - ref)
        dom = np.zeros(m, dtype=bool)
        for p in points:
            dom |= np.all(samples <= p, axis=1)
        hits += int(dom.sum())
    return box * hits / n_samples


def hypervolume(
    points: Sequence[Sequence[float]] | np.ndarray,
    ref: Sequence[float] | np.ndarray,
    method: str = "auto",
    n_samples: int = 200_000,
    seed: int = 0,
) -> float:
    """Hypervolume dominated by ``(N, K)`` higher-is-better points above the reference point.

    Volume of the union of boxes ``[ref, p]``; points not strictly better than ``ref`` in every
    coordinate contribute nothing. ``method="auto"`` is exact for ``K <= 3`` (1-D max, 2-D sweep,
    3-D slicing) and falls back to Monte Carlo for ``K > 3``: ``n_samples`` uniform samples in the
    box ``[ref, max(points)]`` with ``numpy.random.default_rng(seed)`` (standard error ≈
    ``box · sqrt(q(1-q)/n_samples)`` for dominated fraction ``q``). ``method="exact"`` or
    ``"mc"`` forces one (exact only for ``K <= 3``).
    """
    arr = _as_matrix(points)
    r = np.asarray(ref, dtype=float).ravel()
    if r.size != arr.shape[1]:
        raise ValueError(f"ref has {r.size} coordinates, points have {arr.shape[1]}")
    if method not in ("auto", "exact", "mc"):
        raise ValueError(f"unknown method {method!r}")
    arr = arr[np.all(arr > r, axis=1)]
    if arr.shape[0] == 0:
        return 0.0
    arr = arr[pareto_front(arr)]
    k = arr.shape[1]
    if method == "mc" or (method == "auto" and k > 3):
        return _hv_monte_carlo(arr, r, n_samples, seed)
    if k > 3:
        raise ValueError("exact hypervolume is implemented for K <= 3; use method='mc'")
    if k == 1:
        return float(arr.max() - r[0])
    return _hv2d(arr, r) if k == 2 else _hv3d(arr, r)


def win_rates(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, tol: float = 0.0
) -> dict[str, float]:
    """Per-prompt comparison of model A's and B's rewards (MOLMA evaluation).

    ``win``/``tie``/``loss`` are counts of prompts where A's reward is higher / within ``tol`` /
    lower; ``win_rate = (win + tie / 2) / N`` (a tie counts as half a win).
    """
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"need two equal-length non-empty arrays, got {x.shape} and {y.shape}")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("win_rates got NaN")
    diff = x - y
    tie = int(np.sum(np.abs(diff) <= tol))
    win = int(np.sum(diff > tol))
    loss = int(x.size - win - tie)
    return {"win": win, "tie": tie, "loss": loss, "win_rate": (win + 0.5 * tie) / x.size}
