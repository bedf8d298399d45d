"""Evaluation metrics (EMORL §5.3; MOLMA §4.5.1): diversity-2, edit rate (moalign's and the EMORL
authors' definitions), mean ± std, Pareto front, hypervolume, win rates.

References: diversity-2 and edit rate are EMORL §5.3's lexical metrics; mean ± std over seeds and
generation runs follows EMORL §5.1 (5 seeds × 3 runs); Pareto front and hypervolume summarise the
weight points of the hierarchical grid search; win rates with ties counted as half are MOLMA's
per-prompt reward comparison of two models.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import moocore
import numpy as np

from moalign.evaluation.treebank import word_tokenize

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


# ----------------------------------------------------------------------------- the authors'
# EMORL Tables 1-2 were computed by the authors' code with other definitions; these give numbers
# comparable with the paper. A 12-word reply without a repeated bigram: `distinct_n` 11/11 = 1.0,
# `distinct2_authors` 11/12 = 0.917.

LEXICAL_DEFINITIONS = ("moalign", "authors")
"""`moalign`: `diversity2` / `edit_rate` (distinct / total bigrams; lower-cased word tokens).
`authors`: `diversity2_authors` / `edit_rate_authors` (EMORL authors' code)."""


def distinct2_authors(text: str) -> float:
    """The EMORL authors' distinct-2 of one response: distinct bigrams of its whitespace words
    (case kept) / the number of words (not of bigrams); 0.0 for an empty response."""
    words = text.split()
    if not words:
        return 0.0
    return len(set(zip(words, words[1:], strict=False))) / len(words)


def diversity2_authors(responses: Sequence[str]) -> float:
    """Corpus diversity-2 as in the EMORL authors' code: mean of `distinct2_authors`."""
    if len(responses) == 0:
        raise ValueError("diversity2_authors needs at least one response")
    return math.fsum(distinct2_authors(r) for r in responses) / len(responses)


def edit_rate_authors(prompt: str, response: str) -> float:
    """The EMORL authors' edit rate: word-level Levenshtein distance between prompt and response
    on nltk-style tokens (`treebank.word_tokenize`: punctuation and clitics are tokens, case
    kept) / the longer length; 0.0 when both are empty."""
    a, b = word_tokenize(prompt), word_tokenize(response)
    longest = max(len(a), len(b))
    if longest == 0:
        return 0.0
    return levenshtein(a, b) / longest


def lexical_metrics(prompts: Sequence[str], responses: Sequence[str]) -> dict[str, list[float]]:
    """Per-response diversity-2 and edit rate under both definitions (EMORL §5.3): keys
    ``diversity2``, ``edit_rate`` (moalign's) and ``diversity2_authors``, ``edit_rate_authors``."""
    pairs = list(zip(prompts, responses, strict=True))
    return {"diversity2": [distinct_n(r, 2) for _, r in pairs],
            "edit_rate": [edit_rate(p, r) for p, r in pairs],
            "diversity2_authors": [distinct2_authors(r) for _, r in pairs],
            "edit_rate_authors": [edit_rate_authors(p, r) for p, r in pairs]}


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


def hypervolume(
    points: Sequence[Sequence[float]] | np.ndarray,
    ref: Sequence[float] | np.ndarray,
) -> float:
    """Hypervolume dominated by ``(N, K)`` higher-is-better points above the reference point.

    Volume of the union of boxes ``[ref, p]``; points not strictly better than ``ref`` in every
    coordinate contribute nothing. Exact for any number of objectives K, computed by the
    maintained `moocore` library (``moocore.hypervolume(..., maximise=True)``).
    """
    arr = _as_matrix(points)
    r = np.asarray(ref, dtype=float).ravel()
    if r.size != arr.shape[1]:
        raise ValueError(f"ref has {r.size} coordinates, points have {arr.shape[1]}")
    arr = arr[np.all(arr > r, axis=1)]
    if arr.shape[0] == 0:
        return 0.0
    return float(moocore.hypervolume(arr, ref=r, maximise=True))


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
    loss = int(np.sum(diff < -tol))  # counted, not N − win − tie: the three must add up
    return {"win": win, "tie": tie, "loss": loss, "win_rate": (win + 0.5 * tie) / x.size}
