"""The `evidence:` section of an EMORL study: extra stages that test two of the papers' claims.

Both stages run per training seed after the study's own weight search, on the same validation
prompts, decoding settings, aggregation level and batched, cached evaluator as that search
(`moalign.emorl.weight_search.run_search`), and write one JSON file each under
``seed_<s>/evidence/`` (`runs.layout.EvidenceDir`). A file that exists is never recomputed, and
every search / training inside a stage resumes from its own cache or checkpoint.

**Full grid (C4, `full_grid: true`)**: EMORL §4.2 compares Algorithm 1 with the standard grid
search. The full grid ``{0, h, ..., 1}^K`` is evaluated at the hierarchical search's final step
``h = 2^-iterations`` (`grid_search.grid_search`), so every point the hierarchical search visited
is a grid point. The grid's results file starts as a copy of the search's (same fingerprint:
same experts, prompts and decoding), so shared points are decoded once and both searches see the
same value there; the grid then decodes only the points the search skipped. ``full.n_evals``
counts every distinct point of the grid and ``full.seconds`` sums the amortised seconds of each
of them (the copied points at the price the search paid): the cost a standalone full grid would
have had. ``best_value_on_full_grid`` is the grid's value at the hierarchical best point (None
when that point is not on the grid, which cannot happen for a hierarchical search).

**Adding an objective later (C6, `add_objective: NAME`)**: EMORL's selling point is that a new
objective costs one new expert and one search, the other experts staying as they are. The stage
replays that: (1) "before": an ensemble of the other (kept) experts, searched on the kept
objectives only; (2) train the added objective's expert; (3) "after": the kept experts plus the
new one, searched on every objective; then compare "after" with the study's own search (the
"from_start" study, which had the objective from the beginning). The kept experts' adapter
folders are hashed when the stage starts and when it ends: ``experts_unchanged`` is whether no
byte of them changed.

What makes this a test rather than a tautology: the kept experts are the from-start study's own
(that is the claim: nothing is retrained), so with the from-start expert reused as the "new"
one, a greedy "after" search would repeat the from-start search exactly. By default
(`retrain_added: true`) the added expert is therefore trained afresh, with the training seed
``seed + ADDED_SEED_OFFSET``, i.e. a separately trained expert as a user adding the objective
months later would have. "after" vs "from_start" then measures whether an independently trained
addition reaches the same aggregate reward (within `margin`), and ``new_expert_seconds`` is the
real price of that addition (its summary.json) against retraining all K experts. With
`retrain_added: false` the from-start expert is reused, the comparison only measures the search's
reproducibility, and ``new_expert_seconds`` is that expert's recorded training time.

`molma_run` only names the MOLMA evidence study (C5) for the claims table (`molma_run_dir`);
nothing here runs it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from moalign.algorithms.grid_search import SearchResult, point_key
from moalign.core.config import require
from moalign.core.io import atomic_write_json, read_jsonl, write_jsonl
from moalign.core.naming import check_name, objective_name
from moalign.emorl.manifest import EnsembleManifest
from moalign.emorl.scst import SCSTConfig, train_scst
from moalign.emorl.weight_search import SearchConfig, folder_digest, run_search
from moalign.runs.layout import SearchDir, SeedDir, UnitDir
from moalign.runs.stages import read_json, train_or_resume

ADDED_SEED_OFFSET = 1000
"""The added expert trains with seed `s + ADDED_SEED_OFFSET` (a separately trained expert)."""


@dataclass
class EvidenceSection:
    """Extra stages of an EMORL study that test the papers' claims C4 and C6 (see the module
    docstring); absent (null) = none of them."""

    full_grid: bool = False  # C4: the full grid at the hierarchical search's final step
    add_objective: str | None = None  # C6: this objective is added later (one new expert)
    retrain_added: bool = True  # C6: train the added expert afresh (seed + 1000); false: reuse
    molma_run: str | None = None  # C5: the MOLMA evidence run (relative: to this run's folder)
    margin: float = 0.02  # C4 / C6: the stated margin on the search score (mean reward)

    def validate(self) -> None:
        require(math.isfinite(self.margin) and self.margin >= 0,
                f"evidence.margin must be a number >= 0, got {self.margin}")
        if self.add_objective is not None:
            check_name("evidence.add_objective", self.add_objective)

    def check_study(self, objective_names: list[str], search_method: str) -> None:
        """What the section needs from its study: the added objective is one of the study's,
        at least two others stay, and the full grid compares with a hierarchical search."""
        added = self.add_objective
        if added is not None:
            require(added in objective_names, f"evidence.add_objective {added!r} is not one of "
                    f"the study's objectives {objective_names}; name one of them")
            require(len(objective_names) >= 3, "evidence.add_objective needs >= 3 objectives "
                    f"(two or more stay in the 'before' study), got {objective_names}")
        require(not self.full_grid or search_method == "hierarchical",
                "evidence.full_grid compares the full grid with the hierarchical search; set "
                f"search.method: hierarchical (got {search_method})")


def molma_run_dir(section: EvidenceSection | None, run_dir: Path) -> Path | None:
    """The MOLMA evidence run (C5) named by `molma_run`, relative paths from `run_dir`."""
    if section is None or section.molma_run is None:
        return None
    path = Path(section.molma_run)
    return path if path.is_absolute() else Path(run_dir) / path


# ----------------------------------------------------------------------------- C4: full grid


def _weights_list(summary: dict[str, Any]) -> list[float]:
    """A search summary's best weights as a list in expert order."""
    return [float(summary["best_weights"][n]) for n in summary["experts"]]


def _seed_cache(source: SearchDir, target: SearchDir) -> None:
    """Start the grid's results file as a copy of the search's (same fingerprint), once."""
    if target.results.exists():
        return
    atomic_write_json(target.fingerprint, read_json(source.fingerprint))
    write_jsonl(target.results, read_jsonl(source.results))


def _seconds(extra: dict[str, object]) -> float:
    """The amortised decode seconds the evaluator stored with a point (0 if none)."""
    value = extra.get("seconds", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def value_at(result: SearchResult, point: list[float]) -> float | None:
    """The score `result` evaluated at `point` (as evaluated, e.g. normalised), else None."""
    key = point_key(point)
    hits = [r.score for r in result.evaluated if point_key(r.point) == key]
    return hits[0] if hits else None


def full_grid_evidence(search: SearchConfig, margin: float) -> dict[str, Any]:
    """C4 for one seed: evaluate the full grid at the step of `search` (the study's finished
    hierarchical search of that seed); write and return ``evidence/full_grid.json``."""
    seed_dir = SeedDir(Path(search.ensemble))
    out = seed_dir.evidence.full_grid_json
    if out.is_file():
        return read_json(out)
    main = SearchDir(search.resolved_out_dir())
    hier = read_json(main.summary)
    grid_dir = seed_dir.evidence.full_grid
    step = 2.0 ** -search.iterations
    _seed_cache(main, grid_dir)
    grid = run_search(replace(search, method="grid", grid_step=step, out_dir=str(grid_dir.root),
                              save_best=False, plots=False, fresh=False))
    evidence = {
        "objectives": list(hier["experts"]), "step": step,  # the order of every weights list
        "full": {"n_evals": len(grid.evaluated), "best_weights": list(grid.best_point),
                 "best_value": grid.best_score,
                 "seconds": round(math.fsum(_seconds(r.extra) for r in grid.evaluated), 3)},
        "hierarchical": {"n_evals": int(hier["n_evaluated_total"]),
                         "best_weights": _weights_list(hier),
                         "best_value": float(hier["best_score"]),
                         "best_value_on_full_grid": value_at(grid, _weights_list(hier)),
                         "seconds": float(hier["seconds"])},
        "margin": margin,
    }
    atomic_write_json(out, evidence)
    return evidence


# ----------------------------------------------------------------------------- C6: add later


@dataclass
class AddObjective:
    """C6 for one seed: what the study decides (specs, configs); `add_objective_evidence` runs it.

    `search` is the study's search of the seed (ensemble = the seed folder); `specs` maps every
    objective name, in study order, to its scorer spec; `expert` trains the added expert
    afresh, or None to reuse the from-start one."""

    search: SearchConfig
    specs: dict[str, Any]
    added: str
    expert: SCSTConfig | None
    margin: float

    @property
    def seed_dir(self) -> SeedDir:
        return SeedDir(Path(self.search.ensemble))

    @property
    def kept(self) -> list[str]:
        return [n for n in self.specs if n != self.added]


def added_expert_config(study_expert: SCSTConfig, seed_dir: SeedDir) -> SCSTConfig:
    """The added objective's expert: the study's expert config with seed + ADDED_SEED_OFFSET,
    trained into ``evidence/add_objective/experts/<objective>``."""
    name = objective_name(study_expert.objectives[0])
    return replace(study_expert, seed=study_expert.seed + ADDED_SEED_OFFSET,
                   out_dir=str(seed_dir.evidence.added_expert(name).root))


def _kept_digests(plan: AddObjective) -> dict[str, str]:
    adapters = EnsembleManifest.load(plan.seed_dir.root).adapter_paths(plan.seed_dir.root)
    return {n: folder_digest(adapters[n]) for n in plan.kept}


def _write_ensemble(plan: AddObjective, folder: SeedDir, adapters: dict[str, Path]) -> None:
    """An ensemble folder whose entries point (relatively) at existing adapters, no copies."""
    study = EnsembleManifest.load(plan.seed_dir.root)
    experts = {n: Path(os.path.relpath(p, folder.root)).as_posix() for n, p in adapters.items()}
    folder.root.mkdir(parents=True, exist_ok=True)
    EnsembleManifest(base=study.base, experts=experts, system=study.system).save(folder.root)


def _search(plan: AddObjective, folder: SeedDir, names: list[str]) -> dict[str, Any]:
    """The study's search on another ensemble folder and objective subset; its summary."""
    weights = plan.search.weights
    cfg = replace(plan.search, ensemble=str(folder.root), out_dir=None,
                  objectives=[plan.specs[n] for n in names], plots=False, fresh=False,
                  weights=None if weights is None else {n: weights[n] for n in names})
    run_search(cfg)
    return read_json(folder.search.summary)


def _train_added(plan: AddObjective) -> tuple[Path, float]:
    """The added expert's adapter folder and training seconds (trained now, or the study's)."""
    if plan.expert is None:
        unit = plan.seed_dir.expert(plan.added)
        return unit.adapter, float(read_json(unit.summary)["seconds"])
    summary = train_or_resume(train_scst, plan.expert)
    return UnitDir(Path(plan.expert.out_dir)).adapter, float(summary["seconds"])


def add_objective_evidence(plan: AddObjective) -> dict[str, Any]:
    """C6 for one seed: before (kept experts) -> train the added expert -> after (all);
    write and return ``evidence/add_objective.json``."""
    ev = plan.seed_dir.evidence
    if ev.add_objective_json.is_file():
        return read_json(ev.add_objective_json)
    digests = _kept_digests(plan)
    adapters = EnsembleManifest.load(plan.seed_dir.root).adapter_paths(plan.seed_dir.root)
    _write_ensemble(plan, ev.before, {n: adapters[n] for n in plan.kept})
    before = _search(plan, ev.before, plan.kept)
    new_adapter, new_seconds = _train_added(plan)
    after_adapters = {n: new_adapter if n == plan.added else adapters[n] for n in plan.specs}
    _write_ensemble(plan, ev.after, after_adapters)
    after = _search(plan, ev.after, list(plan.specs))
    from_start = read_json(plan.seed_dir.search.summary)
    evidence = {
        "added": plan.added, "kept": plan.kept,
        "before": {"objectives": before["experts"], "best_weights": _weights_list(before),
                   "best_value": before["best_score"], "n_evals": before["n_evaluated_total"]},
        "after": {"objectives": after["experts"], "best_weights": _weights_list(after),
                  "best_value": after["best_score"], "n_evals": after["n_evaluated_total"],
                  "seconds": after["seconds"]},
        "from_start": {"objectives": from_start["experts"],
                       "best_weights": _weights_list(from_start),
                       "best_value": from_start["best_score"]},
        "experts_unchanged": _kept_digests(plan) == digests,
        "new_expert_seconds": new_seconds, "margin": plan.margin,
    }
    atomic_write_json(ev.add_objective_json, evidence)
    return evidence
