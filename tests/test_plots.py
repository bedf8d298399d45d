"""Plot functions write non-empty PNGs (K = 2, 3 and the K > 3 parallel-coordinates path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moalign.algorithms.grid_search import EvalResult, hierarchical_grid_search
from moalign.evaluation.metrics import pareto_front
from moalign.runs.plots import (
    plot_curves,
    plot_pareto,
    plot_reward_scatter,
    plot_search_iterations,
    plot_search_overview,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def _search(k: int, iterations: int = 3, simplex: bool = False):
    c = np.linspace(0.2, 0.8, k)

    def evaluate(points):
        out = []
        for p in points:
            objs = {f"o{i}": 1.0 - abs(x - c[i]) for i, x in enumerate(p)}
            out.append(EvalResult(p, float(np.mean(list(objs.values()))), objs))
        return out

    return hierarchical_grid_search(evaluate, k=k, iterations=iterations, simplex=simplex)


@pytest.mark.parametrize(("k", "simplex"), [(2, False), (3, False), (3, True), (4, False)])
def test_plot_search_iterations_and_overview(tmp_path, k, simplex):
    res = _search(k, simplex=simplex)
    names = [f"obj{i}" for i in range(k)]
    paths = plot_search_iterations(res, names, tmp_path / "iters")
    assert [p.name for p in paths] == [f"search_iter_{i:02d}.png" for i in (1, 2, 3)]
    assert all(_is_png(p) for p in paths)
    out = plot_search_overview(res, tmp_path / "overview.png", names)
    assert _is_png(out)
    assert not [p for p in tmp_path.rglob("*.tmp*")]  # no temp files left behind


@pytest.mark.parametrize("k", [2, 3])
def test_plot_pareto(tmp_path, k):
    res = _search(k)
    mat = np.array([[r.objectives[f"o{i}"] for i in range(k)] for r in res.evaluated])
    out = plot_pareto(mat, [f"o{i}" for i in range(k)], pareto_front(mat), tmp_path / "p.png")
    assert _is_png(out)


def test_plot_curves_and_reward_scatter(tmp_path):
    series = {"reflection": [(16 * i, 0.5 + 0.01 * i) for i in range(30)], "empty": []}
    assert _is_png(plot_curves(series, "prompts consumed", "reward", tmp_path / "c.png"))
    rng = np.random.default_rng(0)
    rewards = {"SO-help": rng.random((50, 2)), "MOLMA": rng.random((50, 2))}
    out = plot_reward_scatter(rewards, ["helpfulness", "safety"], tmp_path / "s.png")
    assert _is_png(out)
    with pytest.raises(ValueError):
        plot_reward_scatter(rewards, ["only-one"], tmp_path / "bad.png")
