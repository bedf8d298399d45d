"""Aggregation-weight search: hierarchical grid search (EMORL Algorithm 1) and baselines.

EMORL §4.2 turns multi-objective fine-tuning into a weight-optimisation problem: find weights
``w`` in ``[0, 1]^K`` for the decode-time aggregation of K single-objective experts that maximise
the mean validation reward. Algorithm 1 ("Hierarchical Grid Search") evaluates a 3-point grid per
axis (``3^K`` points), keeps the ``2^K``-corner sub-box with the highest *sum* of scores, halves
every side and repeats; after ``I`` iterations the grid step is ``2^-I`` (``I = 5`` gives 1/32 with
``5 · 27 = 135`` visited points for ``K = 3``, EMORL §4.2).

Our improvements over the paper's Algorithm 1, all implemented here:

* **Cache across iterations.** The 2^K corners of the chosen sub-box are grid points of the next
  iteration, so only ``3^K - 2^K`` points per iteration after the first are new. For ``K = 3`` and
  ``I = 5`` that is ``27 + 4 · 19 = 103`` evaluations instead of 135.
* **Deterministic tie-breaking.** Sub-boxes are enumerated in lexicographic order of their
  half-index bits (axis 0 first, ``0`` = lower half) and the *first* maximal corner sum wins, i.e.
  the lowest index; corner sums use ``math.fsum`` (correctly rounded, order independent) so
  symmetric score sets give bit-identical sums. The best point is likewise the first point (in
  grid order, earlier iterations first) that strictly beats the running best, as in Algorithm 1.
* **Simplex normalisation** (``simplex=True``): for greedy ``states`` decoding only weight ratios
  matter, so each point is normalised to sum 1 before evaluation and the cache is keyed on the
  normalised point (``(0.5, 0.5, 0.5)`` and ``(1, 1, 1)`` are evaluated once). The all-zero point
  is never evaluated: its score is ``-inf`` (it is never the best point) and, inside corner sums,
  it counts as the minimum finite score of that iteration, so a box touching the origin is neither
  excluded outright nor rewarded for containing it.
* **Batched evaluation.** ``evaluate`` receives every uncached point of an iteration in one call
  (or in chunks of ``batch_size``), so the aggregation code can generate for all of them at once.
* **Append-only results file** (``results_path``, JSONL). One record per evaluated point is
  appended as soon as its batch returns; a file present at start is loaded into the cache, so an
  interrupted search re-run with the same arguments resumes without re-evaluating anything and
  reproduces the uninterrupted result exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NotRequired, TypedDict

import numpy as np

from moalign.core.io import append_jsonl, read_jsonl, write_jsonl

Point = tuple[float, ...]
Key = tuple[float, ...]
KEY_DECIMALS = 12


@dataclass
class EvalResult:
    """Outcome of evaluating one weight point.

    ``point`` is the point that was evaluated (normalised in simplex mode), ``score`` the scalar
    the search maximises, ``objectives`` the per-objective mean validation rewards and ``extra``
    anything else worth keeping (sample responses, timings; must be JSON-serialisable or str-able).
    """

    point: Point
    score: float
    objectives: dict[str, float] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)


EvaluateFn = Callable[[list[Point]], list[EvalResult]]
"""``evaluate(points) -> results``: one result per point, in the same order (batched)."""


class IterationRecord(TypedDict):
    """One search iteration, as kept in `SearchResult.history` (the flat searches have one)."""

    iteration: int  # 1-based
    bounds: list[list[float]]  # the box searched, one (lo, hi) per axis
    points: list[list[float]]  # raw grid / sample points, lexicographic order
    eval_points: list[list[float] | None]  # as evaluated (normalised; None for zero)
    scores: list[float]  # -inf for the skipped zero point
    objectives: list[dict[str, float] | None]
    box_sums: NotRequired[list[float]]  # hierarchical: corner sums of the 2^K sub-boxes
    chosen_index: NotRequired[list[int]]  # hierarchical: half-index bits of the chosen box
    chosen_box: list[list[float]] | None  # hierarchical: the next iteration's box
    best_point: list[float] | None  # best so far
    best_score: float
    n_new: int  # points evaluated in this iteration (cache hits excluded)


@dataclass
class SearchResult:
    """Result of a weight search.

    ``best_point`` is the evaluated point (normalised in simplex mode), ``best_grid_point`` the
    raw grid/sample point it came from. ``n_evaluations`` counts points actually passed to
    ``evaluate`` in *this* run (cache and resume hits excluded); ``n_points_visited`` is the naive
    count without any cache (``3^K · I`` for the hierarchical search). ``evaluated`` lists every
    distinct evaluated point the search used, in first-use order (for Pareto fronts and plots).
    """

    method: str
    best_point: Point
    best_score: float
    best_objectives: dict[str, float]
    best_grid_point: Point
    history: list[IterationRecord]
    n_evaluations: int
    n_points_visited: int
    evaluated: list[EvalResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def aggregate_score(
    objectives: Mapping[str, float],
    weights: Sequence[float] | Mapping[str, float] | None = None,
) -> float:
    """Scalar search score from per-objective mean rewards (EMORL §4.2: mean reward).

    Default: the plain mean over objectives (the paper's evaluation function). With ``weights``
    (a sequence aligned with the mapping's order, or a name -> weight mapping) the score is the
    weighted *sum* ``Σ_k w_k · r_k``; pass ``1/K`` weights to get a weighted mean.
    """
    if not objectives:
        raise ValueError("aggregate_score needs at least one objective")
    names = list(objectives)
    values = [float(objectives[n]) for n in names]
    if weights is None:
        return math.fsum(values) / len(values)
    if isinstance(weights, Mapping):
        missing = [n for n in names if n not in weights]
        if missing:
            raise ValueError(f"no weight for objective(s) {missing}")
        w = [float(weights[n]) for n in names]
    else:
        w = [float(x) for x in weights]
        if len(w) != len(values):
            raise ValueError(f"{len(w)} weights for {len(values)} objectives {names}")
    return math.fsum(wi * vi for wi, vi in zip(w, values, strict=True))


def point_key(point: Iterable[float]) -> Key:
    """Cache key: coordinates rounded to `KEY_DECIMALS` (12) decimals (``-0.0`` folded to 0)."""
    return tuple(round(float(x), KEY_DECIMALS) + 0.0 for x in point)


def normalise_point(point: Sequence[float], simplex: bool) -> Point | None:
    """The point actually evaluated: itself, or scaled to sum 1 in simplex mode (None for zero)."""
    p = tuple(float(x) for x in point)
    if not simplex:
        return p
    if any(x < 0 for x in p):
        raise ValueError(f"simplex mode needs non-negative weights, got {p}")
    total = math.fsum(p)
    if total <= 0.0:
        return None
    return tuple(x / total for x in p)


class _EvalCache:
    """Cache of evaluated points keyed on the (normalised) point, backed by the results file."""

    def __init__(
        self,
        evaluate: EvaluateFn,
        k: int,
        simplex: bool,
        results_path: str | Path | None,
        batch_size: int | None,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.evaluate, self.k, self.simplex = evaluate, k, simplex
        self.results_path = Path(results_path) if results_path is not None else None
        self.batch_size = batch_size
        self.store: dict[Key, EvalResult] = {}
        self.used: dict[Key, EvalResult] = {}
        self.n_evaluations = 0
        if self.results_path is not None:
            self._load(self.results_path)

    def _load(self, path: Path) -> None:
        """Fill the cache from a results file; a torn last line (kill mid-write) is dropped.

        The file is rewritten atomically without the torn line, so later appends start on a
        fresh line instead of gluing onto the fragment.
        """
        records = read_jsonl(path)
        if path.exists() and path.stat().st_size > 0:
            with path.open("rb") as f:
                f.seek(-1, 2)
                if f.read(1) != b"\n":
                    write_jsonl(path, records)
        for i, rec in enumerate(records):
            point = tuple(float(x) for x in rec["normalised"])
            if len(point) != self.k or bool(rec.get("simplex")) != self.simplex:
                raise ValueError(
                    f"{path}: record {i + 1} is from a search with k={len(point)}, "
                    f"simplex={rec.get('simplex')}; this search has k={self.k}, "
                    f"simplex={self.simplex}"
                )
            result = EvalResult(
                point, float(rec["score"]), dict(rec.get("objectives", {})), rec.get("extra", {})
            )
            self.store.setdefault(point_key(point), result)

    def lookup(
        self, raw_points: Sequence[Point], iteration: int, method: str
    ) -> list[EvalResult | None]:
        """Results aligned with ``raw_points`` (None for the skipped zero point in simplex mode).

        Uncached points are evaluated in one batched call (or ``batch_size`` chunks) and their
        records appended to the results file right after each call returns.
        """
        effective = [normalise_point(p, self.simplex) for p in raw_points]
        todo: dict[Key, tuple[Point, Point]] = {}
        for raw, eff in zip(raw_points, effective, strict=True):
            if eff is not None:
                key = point_key(eff)
                if key not in self.store and key not in todo:
                    todo[key] = (raw, eff)
        pending = list(todo.items())
        step = self.batch_size or max(len(pending), 1)
        for start in range(0, len(pending), step):
            self._evaluate_chunk(pending[start : start + step], iteration, method)
        out: list[EvalResult | None] = []
        for eff in effective:
            if eff is None:
                out.append(None)
                continue
            key = point_key(eff)
            out.append(self.store[key])
            self.used.setdefault(key, self.store[key])
        return out

    def _evaluate_chunk(
        self, chunk: list[tuple[Key, tuple[Point, Point]]], iteration: int, method: str
    ) -> None:
        points = [eff for _, (_, eff) in chunk]
        results = list(self.evaluate(points))
        if len(results) != len(points):
            raise ValueError(f"evaluate returned {len(results)} results for {len(points)} points")
        self.n_evaluations += len(points)
        for (key, (raw, eff)), res in zip(chunk, results, strict=True):
            score = float(res.score)
            if not math.isfinite(score):
                raise ValueError(f"evaluate returned a non-finite score {score} for point {eff}")
            res = EvalResult(eff, score, dict(res.objectives), dict(res.extra))
            self.store[key] = res
            if self.results_path is not None:
                append_jsonl(self.results_path, _record(res, raw, iteration, method, self.simplex))


def _record(
    res: EvalResult, raw: Point, iteration: int, method: str, simplex: bool
) -> dict[str, object]:
    return {
        "method": method,
        "iteration": iteration,
        "point": list(raw),
        "normalised": list(res.point),
        "simplex": simplex,
        "score": res.score,
        "objectives": res.objectives,
        "extra": res.extra,
    }


def _scores(results: Sequence[EvalResult | None]) -> list[float]:
    return [-math.inf if r is None else r.score for r in results]


Best = tuple[float, EvalResult | None, Point | None]
"""The running best: (score, its result, the raw point it came from)."""


def _update_best(
    best: Best, raw_points: Sequence[Point], results: Sequence[EvalResult | None]
) -> Best:
    """Algorithm 1 lines 10-14: keep the first point that strictly beats the running best."""
    best_score, best_res, best_raw = best
    for raw, res in zip(raw_points, results, strict=True):
        if res is not None and res.score > best_score:
            best_score, best_res, best_raw = res.score, res, raw
    return best_score, best_res, best_raw


def _axis_grid(lo: float, hi: float) -> tuple[float, float, float]:
    """GenerateGrid for one axis: ``linspace(lo, hi, 3)`` with an exact midpoint."""
    return (lo, (lo + hi) / 2.0, hi)


def find_best_region(
    scores: np.ndarray,
) -> tuple[tuple[int, ...], float, list[float]]:
    """FindBestRegion of EMORL Algorithm 1 on a ``(3,)*K`` score array.

    Returns the half-index bits of the sub-box (0 = lower, 1 = upper half per axis) whose 2^K
    corner scores have the highest sum, that sum, and the sums of all sub-boxes in lexicographic
    order. Ties go to the lowest lexicographic index; sums use ``math.fsum``. Non-finite scores
    (the skipped zero point in simplex mode) count as the minimum finite score of the array.
    """
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        raise ValueError("no finite score in this iteration")
    filled = np.where(np.isfinite(scores), scores, finite.min())
    k = scores.ndim
    best_bits: tuple[int, ...] | None = None
    best_sum = -math.inf
    sums: list[float] = []
    for bits in itertools.product((0, 1), repeat=k):
        corners = filled[tuple(slice(b, b + 2) for b in bits)]
        total = math.fsum(corners.ravel().tolist())
        sums.append(total)
        if best_bits is None or total > best_sum:
            best_bits, best_sum = bits, total
    assert best_bits is not None
    return best_bits, best_sum, sums


def _check_bounds(k: int, bounds: Sequence[Sequence[float]] | None) -> list[tuple[float, float]]:
    if bounds is None:
        return [(0.0, 1.0)] * k
    out = [(float(lo), float(hi)) for lo, hi in bounds]
    if len(out) != k or any(not lo < hi for lo, hi in out):
        raise ValueError(f"bounds must be {k} pairs (lo, hi) with lo < hi, got {bounds}")
    return out


def hierarchical_grid_search(
    evaluate: EvaluateFn,
    k: int,
    iterations: int = 5,
    bounds: Sequence[Sequence[float]] | None = None,
    simplex: bool = False,
    results_path: str | Path | None = None,
    on_iteration: Callable[[IterationRecord], None] | None = None,
    batch_size: int | None = None,
) -> SearchResult:
    """Hierarchical grid search over aggregation weights (EMORL §4.2, Algorithm 1).

    Each iteration evaluates the ``3^K`` grid ``linspace(lo, hi, 3)`` per axis of the current box
    (initially ``bounds`` or ``[0, 1]^K``), then moves to the sub-box found by `find_best_region`.
    See the module docstring for the cache, tie-breaking, simplex and resume rules. Each history
    entry holds ``iteration`` (1-based), ``bounds``, raw grid ``points`` (lexicographic order),
    ``eval_points`` (normalised, None for zero), ``scores``, ``objectives``, ``box_sums``,
    ``chosen_index``, ``chosen_box``, ``best_point``/``best_score`` so far and ``n_new``.
    ``on_iteration`` is called with each entry as soon as the iteration finishes.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    box = _check_bounds(k, bounds)
    cache = _EvalCache(evaluate, k, simplex, results_path, batch_size)
    best: Best = (-math.inf, None, None)
    history: list[IterationRecord] = []
    for it in range(1, iterations + 1):
        axes = [_axis_grid(lo, hi) for lo, hi in box]
        raw_points = [tuple(p) for p in itertools.product(*axes)]
        n_before = cache.n_evaluations
        results = cache.lookup(raw_points, it, "hierarchical")
        scores = _scores(results)
        best = _update_best(best, raw_points, results)
        bits, _, sums = find_best_region(np.asarray(scores, dtype=float).reshape((3,) * k))
        chosen = [(axes[j][b], axes[j][b + 1]) for j, b in enumerate(bits)]
        entry = _iteration_record(it, box, raw_points, results, best,
                                  cache.n_evaluations - n_before, [list(b) for b in chosen])
        entry["box_sums"], entry["chosen_index"] = sums, list(bits)
        history.append(entry)
        if on_iteration is not None:
            on_iteration(entry)
        box = chosen
    return _finish("hierarchical", best, history, cache, (3**k) * iterations)


def _iteration_record(
    it: int, box: Sequence[tuple[float, float]], raw_points: Sequence[Point],
    results: Sequence[EvalResult | None], best: Best, n_new: int,
    chosen_box: list[list[float]] | None,
) -> IterationRecord:
    return {
        "iteration": it,
        "bounds": [list(b) for b in box],
        "points": [list(p) for p in raw_points],
        "eval_points": [None if r is None else list(r.point) for r in results],
        "scores": _scores(results),
        "objectives": [None if r is None else dict(r.objectives) for r in results],
        "chosen_box": chosen_box,
        "best_point": list(best[1].point) if best[1] is not None else None,
        "best_score": best[0],
        "n_new": n_new,
    }


def _finish(
    method: str, best: Best, history: list[IterationRecord], cache: _EvalCache, n_visited: int
) -> SearchResult:
    score, res, raw = best
    if res is None or raw is None:
        raise ValueError("the search evaluated no point")
    return SearchResult(
        method=method,
        best_point=res.point,
        best_score=score,
        best_objectives=dict(res.objectives),
        best_grid_point=tuple(raw),
        history=history,
        n_evaluations=cache.n_evaluations,
        n_points_visited=n_visited,
        evaluated=list(cache.used.values()),
    )


def _flat_search(method: str, raw_points: list[Point], cache: _EvalCache) -> SearchResult:
    """Evaluate a fixed list of points (batched, cached) and return the best one."""
    results = cache.lookup(raw_points, 1, method)
    best = _update_best((-math.inf, None, None), raw_points, results)
    entry = _iteration_record(1, [(0.0, 1.0)] * cache.k, raw_points, results, best,
                              cache.n_evaluations, None)
    return _finish(method, best, [entry], cache, len(raw_points))


def grid_search(evaluate: EvaluateFn, k: int, step: float, simplex: bool = False,
                results_path: str | Path | None = None,
                batch_size: int | None = None) -> SearchResult:
    """Full grid baseline (EMORL §4.2): every point of ``{0, step, …, 1}^K``.

    ``1/step`` must be an integer ``n``; ``n_points_visited = (n + 1)^K`` (33^3 = 35,937 for
    ``K = 3``, step 1/32). Points are evaluated in batches of ``batch_size`` (default: one call).
    """
    n = round(1.0 / step) if step > 0 else 0
    if n < 1 or abs(n * step - 1.0) > 1e-9:
        raise ValueError(f"1/step must be a positive integer, got step={step}")
    cache = _EvalCache(evaluate, k, simplex, results_path, batch_size)
    axis = [i / n for i in range(n + 1)]
    raw_points = [tuple(p) for p in itertools.product(axis, repeat=k)]
    return _flat_search("grid", raw_points, cache)


def random_search(evaluate: EvaluateFn, k: int, n: int, seed: int, simplex: bool = False,
                  results_path: str | Path | None = None,
                  batch_size: int | None = None) -> SearchResult:
    """Random-search baseline: ``n`` points from ``numpy.random.default_rng(seed)``.

    Uniform on ``[0, 1]^K``; in simplex mode uniform on the simplex (Dirichlet(1, …, 1)), since
    normalising cube samples would over-weight the simplex centre. Same seed → same points, so a
    re-run with the results file resumes.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    samples = rng.dirichlet(np.ones(k), size=n) if simplex else rng.random((n, k))
    raw_points = [tuple(float(x) for x in row) for row in samples]
    cache = _EvalCache(evaluate, k, simplex, results_path, batch_size)
    return _flat_search("random", raw_points, cache)
