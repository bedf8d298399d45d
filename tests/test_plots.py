"""Plot functions draw the data they are given (read back from the figure) and write PNGs
(K = 2, 3 and the K > 3 parallel-coordinates path)."""

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


@pytest.fixture()
def figures(monkeypatch):
    """Every figure a plot function saves, kept for inspection (what it draws, not only that a
    PNG exists)."""
    from moalign.runs import plots

    kept: list = []
    real = plots.save_figure

    def keep(fig, out_path, *args, **kwargs):
        kept.append(fig)
        return real(fig, out_path, *args, **kwargs)

    monkeypatch.setattr(plots, "save_figure", keep)
    return kept


def _scatter_sets(ax) -> list[np.ndarray]:
    """The point sets of an axes' scatter calls, in drawing order."""
    return [np.asarray(c.get_offsets()) for c in ax.collections if len(c.get_offsets())]


def _same_rows(a: np.ndarray, b: np.ndarray) -> bool:
    key = lambda m: sorted(map(tuple, np.round(np.asarray(m, dtype=float), 9)))  # noqa: E731
    return key(a) == key(b)


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
def test_plot_search_iterations_and_overview(tmp_path, k, simplex, figures):
    res = _search(k, simplex=simplex)
    names = [f"obj{i}" for i in range(k)]
    paths = plot_search_iterations(res, names, tmp_path / "iters")
    assert [p.name for p in paths] == [f"search_iter_{i:02d}.png" for i in (1, 2, 3)]
    assert all(_is_png(p) for p in paths)
    for fig, entry in zip(figures, res.history, strict=True):
        ax = fig.axes[0]
        assert f"iteration {entry['iteration']}" in ax.get_title()
        if k == 2:  # every grid point with its score as colour, the chosen box as a rectangle
            pts, scores = np.asarray(entry["points"]), np.asarray(entry["scores"])
            grid = ax.collections[0]
            assert _same_rows(grid.get_offsets(), pts)
            assert sorted(grid.get_array()) == pytest.approx(sorted(scores))
            (x0, x1), (y0, y1) = entry["chosen_box"]
            rect = [p for p in ax.patches if p.get_label() == "chosen box"][0]
            assert (rect.get_x(), rect.get_y(), rect.get_width(), rect.get_height()) == \
                pytest.approx((x0, y0, x1 - x0, y1 - y0))
            star = ax.collections[-1].get_offsets()[0]
            assert tuple(star) == pytest.approx(tuple(pts[int(np.argmax(scores))]))
    out = plot_search_overview(res, tmp_path / "overview.png", names)
    assert _is_png(out)
    assert not [p for p in tmp_path.rglob("*.tmp*")]  # no temp files left behind


@pytest.mark.parametrize("k", [2, 3])
def test_plot_pareto(tmp_path, k, figures):
    res = _search(k)
    mat = np.array([[r.objectives[f"o{i}"] for i in range(k)] for r in res.evaluated])
    front = pareto_front(mat)
    out = plot_pareto(mat, [f"o{i}" for i in range(k)], front, tmp_path / "p.png")
    assert _is_png(out)
    axes = [ax for ax in figures[0].axes if ax.get_visible()]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    assert len(axes) == len(pairs)
    on = np.zeros(len(mat), dtype=bool)
    on[front] = True
    for ax, (i, j) in zip(axes, pairs, strict=True):  # red = the front, blue = the rest
        rest, red = _scatter_sets(ax)
        assert _same_rows(red, mat[on][:, [i, j]]) and _same_rows(rest, mat[~on][:, [i, j]])
        assert (ax.get_xlabel(), ax.get_ylabel()) == (f"o{i}", f"o{j}")


def test_plot_curves_and_reward_scatter(tmp_path, figures):
    series = {"reflection": [(16 * i, 0.5 + 0.01 * i) for i in range(30)], "empty": []}
    assert _is_png(plot_curves(series, "prompts consumed", "reward", tmp_path / "c.png"))
    (line,) = figures[0].axes[0].get_lines()  # the empty series draws nothing
    assert line.get_label() == "reflection"
    assert np.allclose(np.column_stack(line.get_data()), np.asarray(series["reflection"]))
    rng = np.random.default_rng(0)
    rewards = {"SO-help": rng.random((50, 2)), "MOLMA": rng.random((50, 2))}
    out = plot_reward_scatter(rewards, ["helpfulness", "safety"], tmp_path / "s.png")
    assert _is_png(out)
    panels = [ax for ax in figures[1].axes if ax.get_visible()]
    for ax, (model, r) in zip(panels, rewards.items(), strict=True):  # one panel per model
        assert ax.get_title().startswith(f"{model} (mean {r[:, 0].mean():.3f}")
        assert np.array_equal(_scatter_sets(ax)[0], r)
    with pytest.raises(ValueError):
        plot_reward_scatter(rewards, ["only-one"], tmp_path / "bad.png")
