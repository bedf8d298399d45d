"""The run's weight search as the playground plots it: every searched point, the Pareto front and
the best weights, read from the search artifacts of the served run directory (never computed).

A study publishes its first seed's ensemble at ``RUN/ensemble.json``, so its search is
``RUN/seed_<s>/search``; ``moalign search -e RUN`` writes ``RUN/search``, which wins when both
exist (that search also stored its best weights in ``RUN/ensemble.json``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from moalign.core.io import read_jsonl
from moalign.runs.layout import RunDir, SearchDir

MAX_POINTS = 2000  # the plot shows at most this many searched points (the latest ones)


def find_search(run_dir: str | Path) -> SearchDir | None:
    """The search folder of `run_dir` (its own, else the first seed's), or None."""
    run = RunDir(Path(run_dir))
    for search in [run.search, *(seed.search for seed in run.seed_dirs())]:
        if search.results.is_file() or search.pareto.is_file():
            return search
    return None


def _finite(x: Any) -> float | None:
    """A JSON-safe number: non-finite or non-numeric values become None."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _weights(values: Sequence[Any] | Mapping[str, Any], names: list[str]) -> dict[str, float]:
    if isinstance(values, Mapping):
        return {n: _finite(values.get(n, 0.0)) or 0.0 for n in names}
    return {n: _finite(v) or 0.0 for n, v in zip(names, values, strict=True)}


def _points(records: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """One entry per distinct evaluated weight point (the point actually decoded with)."""
    seen: dict[tuple[float, ...], dict[str, Any]] = {}
    for rec in records:
        point = rec.get("normalised") or rec.get("point") or []
        if len(point) != len(names):
            continue
        key = tuple(round(float(v), 9) for v in point)
        seen[key] = {"weights": _weights(point, names), "score": _finite(rec.get("score")),
                     "objectives": {k: _finite(v) for k, v in
                                    (rec.get("objectives") or {}).items()}}
    return list(seen.values())[-MAX_POINTS:]


def unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason, "source": None, "simplex": False,
            "points": [], "front": [], "best_weights": None}


def search_points(run_dir: str | Path, objectives: list[str]) -> dict[str, Any]:
    """``{"available", "source", "simplex", "points", "front", "best_weights"}`` for the plot;
    ``available`` is False (with a ``reason``) when the run has no usable search."""
    search = find_search(run_dir)
    if search is None:
        return unavailable(f"no weight search in {run_dir}; run `moalign search -e {run_dir}` "
                           "to plot one")
    try:
        summary = _read_json(search.summary)
        pareto = _read_json(search.pareto)
        records = read_jsonl(search.results)
    except (OSError, ValueError) as e:
        return unavailable(f"the search in {search.root} cannot be read: {e}")
    experts = list(summary.get("experts") or objectives)
    if experts != list(objectives):
        return unavailable(f"the search in {search.root} weighs {experts}, the server serves "
                           f"{list(objectives)}")
    best = summary.get("best_weights") or _read_json(search.best_weights) or None
    simplex = summary.get("simplex")
    if simplex is None:
        usable = [r for r in records if len(r.get("point") or []) == len(experts)]
        simplex = bool(usable) and all(bool(r.get("simplex")) for r in usable)
    front = [{"weights": _weights(p.get("weights") or {}, experts),
              "score": _finite(p.get("score")),
              "objectives": {k: _finite(v) for k, v in (p.get("objectives") or {}).items()}}
             for p in pareto.get("front") or []]
    return {"available": True, "reason": None,
            "source": search.root.relative_to(Path(run_dir)).as_posix(),
            "simplex": bool(simplex), "points": _points(records, experts), "front": front,
            "best_weights": _weights(best, experts) if best else None}
