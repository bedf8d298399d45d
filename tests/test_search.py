"""Weight search (EMORL Algorithm 1 + our improvements) on analytic functions."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from moalign.algorithms.grid_search import (
    EvalResult,
    aggregate_score,
    find_best_region,
    grid_search,
    hierarchical_grid_search,
    normalise_point,
    point_key,
    random_search,
)
from moalign.core.io import read_jsonl

C = (0.71, 0.33, 0.12)


class Recorder:
    """Batched evaluate of ``f`` that records every call; raises once ``fail_after`` calls ran."""

    def __init__(self, f, fail_after: int | None = None):
        self.f, self.fail_after = f, fail_after
        self.calls: list[list[tuple[float, ...]]] = []

    def __call__(self, points):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("interrupted")
        self.calls.append(list(points))
        return [
            EvalResult(p, self.f(p), {f"o{i}": float(x) for i, x in enumerate(p)}) for p in points
        ]

    @property
    def points(self):
        return [p for call in self.calls for p in call]


def quad(p, c=C):
    return -sum((a - b) ** 2 for a, b in zip(p, c, strict=True))


def without_n_new(history):
    return [{k: v for k, v in h.items() if k != "n_new"} for h in history]


def test_finds_maximiser_within_final_step():
    res = hierarchical_grid_search(Recorder(quad), k=3, iterations=5)
    step = 2.0**-5
    assert all(abs(b - c) <= step for b, c in zip(res.best_point, C, strict=True))
    # the best point lies on the final 1/32 grid
    assert all(abs(x * 32 - round(x * 32)) < 1e-12 for x in res.best_point)
    assert res.best_point == (0.71875, 0.34375, 0.125)
    assert res.best_score == pytest.approx(quad(res.best_point))
    # every chosen box keeps the maximiser (separable quadratic: per-axis halving toward c)
    for h in res.history:
        assert all(lo <= c <= hi for (lo, hi), c in zip(h["chosen_box"], C, strict=True))
    assert [hi - lo for lo, hi in res.history[-1]["chosen_box"]] == [step] * 3


def test_evaluation_counts_with_cache():
    """K=3, I=5: naive 3^3 · 5 = 135 visits; the cache pays 27 + 4 · (27 - 8) = 103.

    After the first iteration, the 2^K = 8 corners of the chosen sub-box are exactly the corner
    grid points of the next iteration, so each later iteration evaluates 3^K - 2^K = 19 new
    points. No other coincidence occurs: every new point has a coordinate at an odd multiple of
    the new (finer) grid step, which no coarser earlier grid contains.
    """
    rec = Recorder(quad)
    res = hierarchical_grid_search(rec, k=3, iterations=5)
    assert res.n_points_visited == 135
    assert res.n_evaluations == 103 == len(rec.points)
    assert [h["n_new"] for h in res.history] == [27, 19, 19, 19, 19]
    assert len({point_key(p) for p in rec.points}) == 103  # never the same point twice
    assert len(res.evaluated) == 103
    # K = 2: 9 + 4 · (9 - 4) = 29 versus 45
    res2 = hierarchical_grid_search(Recorder(lambda p: quad(p, C[:2])), k=2, iterations=5)
    assert (res2.n_points_visited, res2.n_evaluations) == (45, 29)


def test_one_batched_call_per_iteration():
    rec = Recorder(quad)
    hierarchical_grid_search(rec, k=3, iterations=5)
    assert [len(c) for c in rec.calls] == [27, 19, 19, 19, 19]
    chunked = Recorder(quad)
    hierarchical_grid_search(chunked, k=3, iterations=2, batch_size=10)
    assert [len(c) for c in chunked.calls] == [10, 10, 7, 10, 9]


def test_on_iteration_callback_and_history():
    seen = []
    res = hierarchical_grid_search(Recorder(quad), k=3, iterations=3, on_iteration=seen.append)
    assert [h["iteration"] for h in seen] == [1, 2, 3]
    assert seen == res.history
    h1 = res.history[0]
    assert h1["bounds"] == [[0.0, 1.0]] * 3
    assert len(h1["points"]) == len(h1["scores"]) == 27
    assert h1["points"][0] == [0.0, 0.0, 0.0] and h1["points"][1] == [0.0, 0.0, 0.5]
    assert res.history[1]["bounds"] == h1["chosen_box"]


def test_constant_function_tie_break_is_lowest_index():
    rec = Recorder(lambda p: 1.0)
    res = hierarchical_grid_search(rec, k=3, iterations=5)
    assert all(h["chosen_index"] == [0, 0, 0] for h in res.history)
    assert res.history[-1]["chosen_box"] == [[0.0, 2.0**-5]] * 3
    assert res.best_point == (0.0, 0.0, 0.0)  # first grid point, nothing strictly better
    again = hierarchical_grid_search(Recorder(lambda p: 1.0), k=3, iterations=5)
    assert again.history == res.history


def test_tie_between_halves_of_one_axis():
    # symmetric in w0 about 0.5: lower and upper halves tie on axis 0 -> lower half (bit 0)
    res = hierarchical_grid_search(Recorder(lambda p: -((p[0] - 0.5) ** 2)), k=2, iterations=2)
    assert res.history[0]["chosen_index"] == [0, 0]
    assert res.history[0]["chosen_box"] == [[0.0, 0.5], [0.0, 0.5]]
    assert res.history[1]["chosen_index"] == [1, 0]  # 0.5 is now the box's upper edge


def test_find_best_region_sums_and_zero_point():
    scores = np.arange(9, dtype=float).reshape(3, 3)
    bits, total, sums = find_best_region(scores)
    assert bits == (1, 1) and total == 4 + 5 + 7 + 8
    assert sums == [0 + 1 + 3 + 4, 1 + 2 + 4 + 5, 3 + 4 + 6 + 7, 4 + 5 + 7 + 8]
    # -inf (the skipped zero point) counts as the minimum finite score (here 1.0)
    scores = np.array([[-np.inf, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    bits, total, sums = find_best_region(scores)
    assert sums == [4.0] * 4 and bits == (0, 0)


def test_resume_after_interruption(tmp_path):
    reference = hierarchical_grid_search(Recorder(quad), k=3, iterations=5)
    path = tmp_path / "search.jsonl"
    first = Recorder(quad, fail_after=2)  # iterations 1 and 2 done, 3 interrupted
    with pytest.raises(RuntimeError, match="interrupted"):
        hierarchical_grid_search(first, k=3, iterations=5, results_path=path)
    assert len(read_jsonl(path)) == 27 + 19
    second = Recorder(quad)
    resumed = hierarchical_grid_search(second, k=3, iterations=5, results_path=path)
    keys = [point_key(p) for p in first.points + second.points]
    assert len(keys) == len(set(keys)) == 103  # nothing evaluated twice across both runs
    assert resumed.n_evaluations == 103 - 46
    assert resumed.best_point == reference.best_point
    assert resumed.best_score == reference.best_score
    assert resumed.best_objectives == reference.best_objectives
    assert without_n_new(resumed.history) == without_n_new(reference.history)
    records = read_jsonl(path)
    assert len(records) == 103
    assert {"iteration", "point", "normalised", "score", "objectives"} <= set(records[0])
    # a third run evaluates nothing at all
    third = Recorder(quad)
    hierarchical_grid_search(third, k=3, iterations=5, results_path=path)
    assert third.calls == []


def test_resume_mid_iteration_and_torn_last_line(tmp_path):
    path = tmp_path / "search.jsonl"
    first = Recorder(quad, fail_after=4)  # batches of 10: dies inside iteration 2
    with pytest.raises(RuntimeError):
        hierarchical_grid_search(first, k=3, iterations=5, results_path=path, batch_size=10)
    with path.open("a") as f:  # a kill in the middle of writing a record
        f.write('{"iteration": 2, "normalised": [0.1')
    second = Recorder(quad)
    res = hierarchical_grid_search(second, k=3, iterations=5, results_path=path, batch_size=10)
    keys = [point_key(p) for p in first.points + second.points]
    assert len(keys) == len(set(keys)) == 103
    assert res.best_point == (0.71875, 0.34375, 0.125)
    assert len(read_jsonl(path)) == 103


def test_results_file_from_other_search_is_rejected(tmp_path):
    path = tmp_path / "search.jsonl"
    hierarchical_grid_search(
        Recorder(lambda p: quad(p, C[:2])), k=2, iterations=1, results_path=path
    )
    with pytest.raises(ValueError, match="k=2"):
        hierarchical_grid_search(Recorder(quad), k=3, iterations=1, results_path=path)


def test_simplex_skips_zero_and_dedups_proportional_points():
    """Iteration 1 on {0, .5, 1}^3: 26 non-zero points, of which the 7 non-zero points of
    {0, .5}^3 are halves of points of {0, 1}^3 -> 19 distinct ratios.

    For a constant score every box is [0, 2^-i]^3, whose grid is the first grid scaled by 2^-i,
    so every later point is proportional to a cached one: 19 evaluations in total, versus 135.
    """
    rec = Recorder(lambda p: 1.0)
    res = hierarchical_grid_search(rec, k=3, iterations=5, simplex=True)
    assert res.n_evaluations == 19 and res.n_points_visited == 135
    assert [h["n_new"] for h in res.history] == [19, 0, 0, 0, 0]
    assert all(math.isclose(sum(p), 1.0) for p in rec.points)
    assert len({point_key(p) for p in rec.points}) == 19
    assert point_key((1 / 3, 1 / 3, 1 / 3)) in {point_key(p) for p in rec.points}
    h1 = res.history[0]
    assert h1["scores"][0] == -math.inf and h1["eval_points"][0] is None
    assert h1["scores"][13] == h1["scores"][26] == 1.0  # (.5,.5,.5) and (1,1,1) share a result
    assert sum(res.best_point) == pytest.approx(1.0)

    target = (0.6, 0.3, 0.1)
    rec = Recorder(lambda p: quad(p, target))
    res = hierarchical_grid_search(rec, k=3, iterations=5, simplex=True)
    assert res.history[0]["n_new"] == 19
    assert (0.0, 0.0, 0.0) not in rec.points
    assert len({point_key(p) for p in rec.points}) == len(rec.points) == res.n_evaluations
    ref = reference_search(lambda p: quad(p, target), 3, 5, simplex=True)
    assert res.n_evaluations == ref["distinct"]  # every distinct ratio paid once, no more
    assert res.best_grid_point == ref["best_grid_point"]
    assert res.best_point == pytest.approx(ref["best_point"], abs=1e-12)
    assert [h["chosen_box"] for h in res.history] == ref["boxes"]
    assert max(abs(a - b) for a, b in zip(res.best_point, target, strict=True)) < 0.01


def reference_search(f, k: int, iterations: int, simplex: bool) -> dict:
    """EMORL Algorithm 1 written plainly, as the authors' loop runs it (no cache): evaluate the
    3^K linspace grid of the box, move to the 2^K sub-box with the highest sum of corner scores
    (first on ties, sub-boxes in itertools.product order; the skipped zero point counts as the
    lowest finite score), keep the best point seen (the first on ties)."""
    box, best, seen, boxes = [(0.0, 1.0)] * k, (-math.inf, None, None), set(), []
    for _ in range(iterations):
        axes = [np.linspace(lo, hi, 3).tolist() for lo, hi in box]
        grid = list(itertools.product(*axes))
        scores = []
        for p in grid:
            q = tuple(x / sum(p) for x in p) if simplex and sum(p) > 0 else p
            if simplex and sum(p) == 0:
                scores.append(-math.inf)
                continue
            seen.add(tuple(round(x, 9) for x in q))
            scores.append(f(q))
            if scores[-1] > best[0]:
                best = (scores[-1], q, p)
        arr = np.array(scores).reshape((3,) * k)
        arr[~np.isfinite(arr)] = arr[np.isfinite(arr)].min()
        sums = {bits: sum(arr[tuple(b + c for b, c in zip(bits, corner, strict=True))]
                          for corner in itertools.product((0, 1), repeat=k))
                for bits in itertools.product((0, 1), repeat=k)}
        bits = max(sums, key=lambda b: (sums[b], [-x for x in b]))
        box = [(axes[j][b], axes[j][b + 1]) for j, b in enumerate(bits)]
        boxes.append([list(b) for b in box])
    return {"best_point": best[1], "best_grid_point": best[2], "distinct": len(seen),
            "boxes": boxes}


def test_hierarchical_search_equals_the_plain_algorithm_1():
    for simplex in (False, True):
        for target in ((0.71, 0.33, 0.12), (0.2, 0.9, 0.45), (0.05, 0.05, 0.95)):
            res = hierarchical_grid_search(Recorder(lambda p, t=target: quad(p, t)), k=3,
                                           iterations=4, simplex=simplex)
            ref = reference_search(lambda p, t=target: quad(p, t), 3, 4, simplex)
            assert res.best_grid_point == ref["best_grid_point"], (simplex, target)
            assert res.best_point == pytest.approx(ref["best_point"], abs=1e-12)
            assert res.n_evaluations == ref["distinct"]
            assert [h["chosen_box"] for h in res.history] == ref["boxes"]


def test_normalise_point():
    assert normalise_point((0.0, 0.0), simplex=True) is None
    assert normalise_point((1.0, 3.0), simplex=True) == (0.25, 0.75)
    assert normalise_point((1.0, 3.0), simplex=False) == (1.0, 3.0)
    with pytest.raises(ValueError):
        normalise_point((-1.0, 3.0), simplex=True)


def test_grid_search_baseline(tmp_path):
    rec = Recorder(lambda p: quad(p, (0.7, 0.2)))
    res = grid_search(rec, k=2, step=0.25)
    assert len(rec.calls) == 1 and res.n_evaluations == res.n_points_visited == 25
    assert res.best_point == pytest.approx((0.75, 0.25))
    simplex = Recorder(lambda p: p[0])
    res = grid_search(simplex, k=2, step=0.5, simplex=True)
    # 9 points - zero - (.5,0)~(1,0), (0,.5)~(0,1), (.5,.5)~(1,1): 5 ratios
    assert res.n_evaluations == 5 and res.n_points_visited == 9
    assert res.best_point == (1.0, 0.0)
    path = tmp_path / "grid.jsonl"
    grid_search(Recorder(lambda p: 0.0), k=2, step=0.5, results_path=path)
    again = Recorder(lambda p: 0.0)
    grid_search(again, k=2, step=0.5, results_path=path)
    assert again.calls == []
    with pytest.raises(ValueError):
        grid_search(rec, k=2, step=0.3)


def test_random_search_baseline():
    rec = Recorder(quad)
    res = random_search(rec, k=3, n=50, seed=3)
    assert res.n_evaluations == res.n_points_visited == 50 and len(rec.calls) == 1
    assert res.best_score == max(quad(p) for p in rec.points)
    again = random_search(Recorder(quad), k=3, n=50, seed=3)
    assert again.best_point == res.best_point
    other = random_search(Recorder(quad), k=3, n=50, seed=4)
    assert other.best_point != res.best_point
    rec = Recorder(quad)
    random_search(rec, k=3, n=20, seed=0, simplex=True)
    assert all(math.isclose(sum(p), 1.0) for p in rec.points)


def test_aggregate_score_and_evaluator():
    objs = {"reflection": 0.9, "empathy": 0.6, "fluency": 0.3}
    assert aggregate_score(objs) == pytest.approx(0.6)
    assert aggregate_score(objs, [1.0, 0.0, 0.0]) == pytest.approx(0.9)
    assert aggregate_score(objs, {"reflection": 0.5, "empathy": 0.5, "fluency": 0.0}) == (
        pytest.approx(0.75)
    )
    with pytest.raises(ValueError):
        aggregate_score(objs, [1.0])
    with pytest.raises(ValueError):
        aggregate_score({})


def test_bad_evaluate_outputs():
    with pytest.raises(ValueError, match="non-finite"):
        hierarchical_grid_search(lambda pts: [EvalResult(p, math.nan) for p in pts], k=2)
    with pytest.raises(ValueError, match="results for"):
        hierarchical_grid_search(lambda pts: [EvalResult(pts[0], 0.0)], k=2)


def test_search_result_serialises():
    res = hierarchical_grid_search(Recorder(quad), k=3, iterations=2)
    text = json.dumps(res.to_dict())
    assert json.loads(text)["n_evaluations"] == 27 + 19
