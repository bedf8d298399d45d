"""Figures: weight-search iterations (EMORL Figure 4), Pareto fronts, training curves and
per-prompt reward scatters (MOLMA Figure 3).

Matplotlib's object API (a `Figure` per plot, no pyplot): nothing needs a display and importing
this module leaves the process's backend alone. Every PNG is written atomically: saved to a
temporary file in the target folder, then renamed over the destination with ``os.replace``.
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from moalign.algorithms.grid_search import SearchResult
from moalign.runs.layout import SearchDir

CMAP = "viridis"


def save_figure(fig: Figure, out_path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` as PNG atomically (temp file in the same folder + ``os.replace``)."""
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _names(k: int, objective_names: Sequence[str] | None) -> list[str]:
    if objective_names is None:
        return [f"w{i + 1}" for i in range(k)]
    if len(objective_names) != k:
        raise ValueError(f"{len(objective_names)} names for {k} weights")
    return [f"w_{n}" for n in objective_names]


def _iteration_arrays(entry: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw grid points (N, K), scores (N,) and a mask of finite scores for one history entry."""
    pts = np.asarray(entry["points"], dtype=float)
    scores = np.asarray(entry["scores"], dtype=float)
    return pts, scores, np.isfinite(scores)


def _box_edges(box: Sequence[Sequence[float]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 12 edges of a 3-D box ``[[lo, hi]] * 3`` as pairs of end points."""
    corners = [np.array(c) for c in itertools.product(*box)]
    edges = []
    for a, b in itertools.combinations(corners, 2):
        if np.count_nonzero(a != b) == 1:
            edges.append((a, b))
    return edges


def _limits(bounds: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """Axis limits: the iteration's box with a 6% margin on each side."""
    return [(lo - 0.06 * (hi - lo), hi + 0.06 * (hi - lo)) for lo, hi in bounds]


def _draw_3d(ax: Any, entry: Mapping[str, Any], names: list[str], norm: Normalize) -> Any:
    pts, scores, ok = _iteration_arrays(entry)
    sc = ax.scatter(*pts[ok].T, c=scores[ok], cmap=CMAP, norm=norm, s=40, depthshade=False)
    if (~ok).any():
        ax.scatter(*pts[~ok].T, marker="x", c="grey", s=40, label="skipped (zero)")
    if entry.get("chosen_box") is not None:
        for i, (a, b) in enumerate(_box_edges(entry["chosen_box"])):
            label = "chosen box" if i == 0 else None
            ax.plot(*np.stack([a, b]).T, color="red", lw=1.5, label=label)
    best = _iteration_best(entry)
    if best is not None:
        ax.scatter(*best, marker="*", s=260, c="red", edgecolors="black", label="best")
    for setter, lim in zip(
        (ax.set_xlim, ax.set_ylim, ax.set_zlim), _limits(entry["bounds"]), strict=True
    ):
        setter(*lim)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_zlabel(names[2])
    return sc


def _draw_2d(ax: Axes, entry: Mapping[str, Any], names: list[str], norm: Normalize) -> Any:
    pts, scores, ok = _iteration_arrays(entry)
    sc = ax.scatter(pts[ok, 0], pts[ok, 1], c=scores[ok], cmap=CMAP, norm=norm, s=60)
    if (~ok).any():
        ax.scatter(pts[~ok, 0], pts[~ok, 1], marker="x", c="grey", s=60, label="skipped (zero)")
    if entry.get("chosen_box") is not None:
        (x0, x1), (y0, y1) = entry["chosen_box"]
        rect = Rectangle(
            (x0, y0), x1 - x0, y1 - y0, fill=False, ec="red", lw=1.5, label="chosen box"
        )
        ax.add_patch(rect)
    best = _iteration_best(entry)
    if best is not None:
        ax.scatter(best[0], best[1], marker="*", s=260, c="red", edgecolors="black", label="best",
                   zorder=3)
    (xl, yl) = _limits(entry["bounds"])
    ax.set_xlim(*xl)
    ax.set_ylim(*yl)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_aspect("equal", adjustable="box")
    return sc


def _draw_parallel(ax: Axes, entry: Mapping[str, Any], names: list[str], norm: Normalize
                   ) -> ScalarMappable:
    """Parallel coordinates for K > 3: one line per point coloured by score, chosen box shaded."""
    pts, scores, ok = _iteration_arrays(entry)
    xs = np.arange(pts.shape[1])
    cmap = matplotlib.colormaps[CMAP]
    for p, s in zip(pts[ok], scores[ok], strict=True):
        ax.plot(xs, p, color=cmap(norm(s)), alpha=0.6, lw=1)
    if entry.get("chosen_box") is not None:
        box = np.asarray(entry["chosen_box"], dtype=float)
        ax.fill_between(xs, box[:, 0], box[:, 1], color="red", alpha=0.15, label="chosen box")
    best = _iteration_best(entry)
    if best is not None:
        ax.plot(xs, best, color="red", lw=2.5, label="best")
    ax.set_xticks(xs, names, rotation=30)
    ax.set_ylabel("weight")
    sm = ScalarMappable(norm=norm, cmap=cmap)
    return sm


def _iteration_best(entry: Mapping[str, Any]) -> np.ndarray | None:
    """Raw grid point with the highest score in this iteration (first on ties)."""
    pts, scores, ok = _iteration_arrays(entry)
    if not ok.any():
        return None
    return pts[int(np.argmax(np.where(ok, scores, -np.inf)))]


def _norm(entries: Sequence[Mapping[str, Any]]) -> Normalize:
    vals = np.concatenate([_iteration_arrays(e)[1] for e in entries])
    vals = vals[np.isfinite(vals)]
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
    if math.isclose(lo, hi):
        lo, hi = lo - 0.5, hi + 0.5
    return Normalize(vmin=lo, vmax=hi)


def _draw_iteration(
    fig: Figure, pos: tuple[int, int, int], entry: Mapping[str, Any], names: list[str]
) -> tuple[Any, Any]:
    """Add one iteration panel at subplot position ``pos`` and return (axes, mappable)."""
    k = len(names)
    norm = _norm([entry])
    if k == 3:
        ax = fig.add_subplot(*pos, projection="3d")
        sc = _draw_3d(ax, entry, names, norm)
    else:
        ax = fig.add_subplot(*pos)
        sc = _draw_2d(ax, entry, names, norm) if k == 2 else _draw_parallel(ax, entry, names, norm)
    title = f"iteration {entry['iteration']}"
    if entry.get("best_score") is not None and math.isfinite(entry["best_score"]):
        title += f" (best so far {entry['best_score']:.4f})"
    if entry.get("chosen_box") is not None:
        sides = (f"[{lo:.4g}, {hi:.4g}]" for lo, hi in entry["chosen_box"])
        title += "\nnext box " + " × ".join(sides)
    ax.set_title(title, fontsize=9)
    return ax, sc


def plot_search_iterations(
    result: SearchResult, objective_names: Sequence[str] | None, out_dir: str | Path
) -> list[Path]:
    """One figure per search iteration, like EMORL Figure 4.

    Points are the iteration's grid in weight space coloured by score (per-iteration colour
    scale, colorbar); the chosen sub-box is outlined in red (3-D wireframe for K = 3, rectangle
    for K = 2, shaded band in parallel coordinates for K > 3) and the iteration's best point is a
    red star. Skipped points (the zero point in simplex mode) are grey crosses. Files are
    ``out_dir/search_iter_{i:02d}.png``.
    """
    k = len(result.history[0]["points"][0])
    names = _names(k, objective_names)
    paths = []
    for entry in result.history:
        fig = Figure(figsize=(6.4, 5.2))
        ax, sc = _draw_iteration(fig, (1, 1, 1), entry, names)
        fig.colorbar(sc, ax=ax, shrink=0.7, pad=0.12 if k == 3 else 0.04, label="score")
        ax.legend(loc="upper center", fontsize=8, ncol=3, bbox_to_anchor=(0.5, -0.08))
        out = SearchDir(Path(out_dir)).iteration_png(entry["iteration"])
        paths.append(save_figure(fig, out))
    return paths


def plot_search_overview(
    result: SearchResult, out_path: str | Path, objective_names: Sequence[str] | None = None
) -> Path:
    """All iterations of a search side by side in one row of subplots (EMORL Figure 4)."""
    k = len(result.history[0]["points"][0])
    names = _names(k, objective_names)
    n = len(result.history)
    fig = Figure(figsize=(5.8 * n, 4.8))
    for i, entry in enumerate(result.history):
        ax, sc = _draw_iteration(fig, (1, n, i + 1), entry, names)
        fig.colorbar(sc, ax=ax, shrink=0.6, pad=0.18 if k == 3 else 0.04)
    fig.suptitle(
        f"{result.method} search: best {result.best_score:.4f} at "
        + ", ".join(f"{x:.4g}" for x in result.best_point)
    )
    return save_figure(fig, out_path)


def plot_pareto(
    objectives_matrix: np.ndarray | Sequence[Sequence[float]],
    names: Sequence[str],
    front_idx: Sequence[int],
    out_path: str | Path,
) -> Path:
    """Pairwise scatter of per-objective rewards of every evaluated point, Pareto front in red."""
    arr = np.asarray(objectives_matrix, dtype=float)
    k = arr.shape[1]
    if len(names) != k:
        raise ValueError(f"{len(names)} names for {k} objectives")
    pairs = list(itertools.combinations(range(k), 2))
    front = np.zeros(len(arr), dtype=bool)
    front[list(front_idx)] = True
    fig = Figure(figsize=(4.4 * len(pairs), 4.2))
    axes = fig.subplots(1, len(pairs), squeeze=False)
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        ax.scatter(arr[~front, i], arr[~front, j], s=14, c="tab:blue", alpha=0.5, label="evaluated")
        ax.scatter(
            arr[front, i], arr[front, j], s=36, c="red", edgecolors="black", label="Pareto front"
        )
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="best")
    return save_figure(fig, out_path)


def plot_curves(
    series: Mapping[str, Sequence[tuple[float, float]]],
    xlabel: str,
    ylabel: str,
    out_path: str | Path,
    title: str | None = None,
) -> Path:
    """Generic line plot, one line per named series of (x, y), e.g. reward vs data consumed."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for name, xy in series.items():
        if len(xy) == 0:
            continue
        x, y = np.asarray(xy, dtype=float).T
        ax.plot(x, y, label=name, marker="." if len(x) < 40 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if series:  # below the axes: curves often end in every corner
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                  ncol=min(3, len(series)), frameon=False)
    return save_figure(fig, out_path)


def plot_reward_scatter(
    model_rewards: Mapping[str, np.ndarray | Sequence[Sequence[float]]],
    names: Sequence[str],
    out_path: str | Path,
) -> Path:
    """MOLMA Figure 3: per model, objective-1 vs objective-2 reward of each prompt (shared axes)."""
    if len(names) != 2:
        raise ValueError(f"plot_reward_scatter needs 2 objective names, got {names}")
    models = list(model_rewards)
    if not models:
        raise ValueError("plot_reward_scatter needs at least one model")
    cols = min(3, len(models))
    rows = -(-len(models) // cols)
    fig = Figure(figsize=(4.2 * cols, 4.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    for i, model in enumerate(models):
        ax = axes[i // cols][i % cols]
        arr = np.asarray(model_rewards[model], dtype=float).reshape(-1, 2)
        ax.scatter(arr[:, 0], arr[:, 1], s=10, alpha=0.6)
        ax.set_title(f"{model} (mean {arr[:, 0].mean():.3f}, {arr[:, 1].mean():.3f})", fontsize=9)
        ax.grid(alpha=0.3)
    for i in range(rows * cols):
        ax = axes[i // cols][i % cols]
        if i >= len(models):
            ax.set_visible(False)
        elif i + cols >= len(models):  # the lowest panel of its column: show the x axis
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel(names[0])
    for row in axes:
        row[0].set_ylabel(names[1])
    return save_figure(fig, out_path)
