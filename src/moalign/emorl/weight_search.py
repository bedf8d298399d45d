"""`moalign search`: find aggregation weights for an ensemble's experts (EMORL §4.2, Algorithm 1).

    ensemble  <- load_ensemble(RUN_DIR)             base model + one LoRA expert per objective
    scorers   <- the ensemble's objectives           (default: the expert names; overridable)
    prompts   <- validation prompts                  (embedded counsel val split by default)
    evaluate  <- make_weight_evaluator(...)          many weight points per batched generation
    result    <- hierarchical | grid | random search over [0, 1]^K, cached in results.jsonl
    artifacts -> OUT/config.yaml, results.jsonl, best_weights.json, summary.json, history.json,
                 pareto.json, search_iter_XX.png, search_overview.png, pareto.png
    manifest  <- best_weights                        (`moalign generate` uses them by default)

OUT defaults to RUN_DIR/search. A re-run with the same settings resumes from results.jsonl and
evaluates nothing twice; the search method may change between runs (its points are reused). A
re-run whose evaluation settings differ (other experts, objectives, prompts, level, decoding) is
refused unless ``fresh=true`` (start over) or another ``out_dir`` is given.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from moalign.algorithms.grid_search import (
    EvaluateFn,
    IterationRecord,
    SearchResult,
    grid_search,
    hierarchical_grid_search,
    random_search,
)
from moalign.core.config import ConfigError, require, require_each, save_config
from moalign.core.errors import ObjectiveError
from moalign.core.io import atomic_write_json, read_jsonl
from moalign.data import load_prompts
from moalign.emorl.manifest import EnsembleManifest, load_ensemble
from moalign.evaluation.evaluate import make_weight_evaluator
from moalign.evaluation.metrics import hypervolume, pareto_front
from moalign.rewards.scorers import Scorer, build_scorers
from moalign.runs import plots
from moalign.runs.layout import SearchDir, SeedDir
from moalign.sampling import Sampling


@dataclass
class SearchConfig:
    """Weight search over an ensemble's experts (one config per `moalign search`)."""

    RENAMED: ClassVar[dict[str, str]] = {"score_weights": "weights"}  # old names still load

    ensemble: str = ""  # run directory holding ensemble.json
    out_dir: str | None = None  # default: <ensemble>/search
    objectives: Any = None  # scorer specs (list, or {name: spec}); default: the expert names
    data: Any = "counsel_val"  # validation prompts: embedded name, file, list or load_prompts dict
    column: str = "prompt"  # prompt column of `data` files
    n_prompts: int = 16  # validation prompts used (0: all)
    method: Literal["hierarchical", "grid", "random"] = "hierarchical"
    iterations: int = 5  # hierarchical: grid step 2^-iterations
    grid_step: float = 0.25  # grid: points {0, step, ..., 1}^K (1/32: 33^3, not the paper's 32^3)
    n_random: int = 64  # random: number of points
    seed: int = 0  # random points and sampling
    # normalise points to sum 1 and skip (0, ..., 0) (the authors evaluate it); default: greedy
    # states/logits, where only weight ratios matter
    simplex: bool | None = None
    level: Literal["states", "logits", "params"] = "states"
    max_new_tokens: int = 64
    do_sample: bool = False  # greedy by default (deterministic search)
    temperature: float = 1.0
    top_p: float = 1.0
    weights: dict[str, float] | None = None  # objective weights of the search score Σ w·r
    #                                          (default: the mean reward)
    system: str | None = None  # default: the manifest's system prompt
    chunk_size: int = 256  # sequences per generation call
    points_per_call: int = 0  # weight points per evaluation call (0: a whole iteration)
    device: str = "auto"
    plots: bool = True
    save_best: bool = True  # store best_weights in ensemble.json
    fresh: bool = False  # delete earlier results in out_dir instead of resuming

    def validate(self) -> None:
        require(bool(self.ensemble), "ensemble is not set; pass --ensemble RUN_DIR (a folder "
                "with ensemble.json, made by `moalign ensemble create` or `moalign run`)")
        require_each(self, ("iterations", "n_random", "max_new_tokens", "chunk_size"),
                     lambda v: v >= 1, ">= 1")
        require(self.n_prompts >= 0, f"n_prompts must be >= 0 (0: all), got {self.n_prompts}")
        require(self.points_per_call >= 0, "points_per_call must be >= 0 (0: a whole iteration)")
        n = round(1.0 / self.grid_step) if self.grid_step > 0 else 0
        require(n >= 1 and abs(n * self.grid_step - 1.0) < 1e-9,
                f"1/grid_step must be a positive integer, got grid_step={self.grid_step}; "
                "try 0.25 or 0.125")
        require(math.isfinite(self.temperature) and self.temperature > 0,
                f"temperature must be > 0, got {self.temperature}")
        require(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}")

    def resolved_simplex(self) -> bool:
        """Greedy `states`/`logits` decoding depends only on weight ratios: search the simplex."""
        if self.simplex is not None:
            return self.simplex
        return self.level in ("states", "logits") and not self.do_sample

    def resolved_out_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else SeedDir(Path(self.ensemble)).search.root


# ----------------------------------------------------------------------------- inputs


def build_search_scorers(objectives: Any, expert_names: list[str]) -> list[Scorer]:
    """Scorers for the search: `objectives` (list or {name: spec}) or one per expert name."""
    if objectives is None:
        try:
            return build_scorers(list(expert_names))
        except ObjectiveError as e:
            raise ObjectiveError(f"{e}. The experts {expert_names} are scored by objectives of "
                                 "the same name by default; set `objectives` to scorer specs "
                                 "(e.g. objectives=[reflection,python:pkg.mod:func])") from None
    if isinstance(objectives, dict):
        objectives = [{**spec, "name": name} if isinstance(spec, dict) else spec
                      for name, spec in objectives.items()]
    if isinstance(objectives, str):
        objectives = [s.strip() for s in objectives.split(",") if s.strip()]
    return build_scorers(list(objectives))


def load_search_prompts(data: Any, column: str = "prompt", n_prompts: int = 0) -> list[str]:
    """Validation prompts from an embedded name, a file, a list or a `load_prompts` dict."""
    if isinstance(data, list | tuple):
        prompts = [str(p) for p in data]
    elif isinstance(data, dict):
        prompts = load_prompts({"column": column, **data})
    else:
        prompts = load_prompts({"path": str(data), "column": column})
    prompts = prompts[:n_prompts] if n_prompts else prompts
    if not prompts:
        raise ConfigError(f"no validation prompts in {data!r}; point data= at a prompt file")
    return prompts


def _spec_id(spec: Any) -> str:
    """A stable text form of a scorer spec (callables by module:qualname, not by address)."""
    return json.dumps(_yaml_safe(spec), sort_keys=True, default=str)


def _yaml_safe(spec: Any) -> Any:
    """Scorer specs for config.yaml: a callable becomes its `module:qualname` dotted path."""
    if callable(spec):
        return f"{getattr(spec, '__module__', '')}:{getattr(spec, '__qualname__', '')}"
    if isinstance(spec, dict):
        return {k: _yaml_safe(v) for k, v in spec.items()}
    if isinstance(spec, list | tuple):
        return [_yaml_safe(v) for v in spec]
    return spec


def check_score_weights(score_weights: dict[str, float] | None, names: list[str]) -> None:
    """`weights` must name every objective exactly once, with finite values."""
    if score_weights is None:
        return
    require(set(score_weights) == set(names),
            f"weights names {sorted(score_weights)} but the objectives are {names}; "
            "give one weight per objective, e.g. weights={"
            + ",".join(f"{n}: 1" for n in names) + "}")
    require(all(math.isfinite(float(v)) for v in score_weights.values()),
            f"weights must be finite numbers, got {score_weights}")


def folder_digest(folder: Path) -> str:
    """sha256 (16 hex digits) of a folder's file names and contents: a retrained adapter differs."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode("utf-8"))
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def search_fingerprint(cfg: SearchConfig, manifest: EnsembleManifest, scorer_names: list[str],
                       prompts: list[str]) -> dict[str, Any]:
    """What makes cached evaluations valid: experts (and their weights), objectives, prompts,
    aggregation level and decoding settings."""
    digest = hashlib.sha256("\n".join(prompts).encode("utf-8")).hexdigest()[:16]
    adapters = manifest.adapter_paths(cfg.ensemble)
    return {
        "base": manifest.base, "experts": dict(manifest.experts), "objectives": scorer_names,
        "adapter_sha256": {n: folder_digest(p) for n, p in adapters.items()},
        "objective_specs": _spec_id(cfg.objectives), "prompts_sha256": digest,
        "n_prompts": len(prompts), "level": cfg.level, "simplex": cfg.resolved_simplex(),
        "max_new_tokens": cfg.max_new_tokens, "do_sample": cfg.do_sample,
        "temperature": cfg.temperature if cfg.do_sample else None,
        "top_p": cfg.top_p if cfg.do_sample else None,
        "seed": cfg.seed if cfg.do_sample else None, "score_weights": cfg.weights,
        "system": cfg.system if cfg.system is not None else manifest.system,
    }


def prepare_out_dir(out: Path, fingerprint: dict[str, Any], fresh: bool) -> None:
    """Start over (``fresh``), resume (same fingerprint), or refuse mixing different searches."""
    d = SearchDir(out)
    results, fp_path = d.results, d.fingerprint
    if fresh:
        for path in (results, *d.derived(), *d.iteration_pngs()):
            path.unlink(missing_ok=True)
    elif results.exists() and fp_path.is_file():
        old = json.loads(fp_path.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
        if changed:
            raise ConfigError(
                f"{out} holds results of a different search (changed: {changed}); pass "
                f"fresh=true to start over there, or out_dir=<another folder> to keep both")
    atomic_write_json(fp_path, fingerprint)


# ----------------------------------------------------------------------------- search


def run_method(cfg: SearchConfig, evaluate: EvaluateFn, k: int, results_path: Path,
               on_iteration: Callable[[IterationRecord], None] | None = None) -> SearchResult:
    """Dispatch to the hierarchical / grid / random search of `moalign.algorithms.grid_search`."""
    simplex, batch = cfg.resolved_simplex(), cfg.points_per_call or None
    if cfg.method == "hierarchical":
        return hierarchical_grid_search(evaluate, k, cfg.iterations, simplex=simplex,
                                        results_path=results_path, batch_size=batch,
                                        on_iteration=on_iteration)
    if cfg.method == "grid":
        return grid_search(evaluate, k, cfg.grid_step, simplex, results_path, batch)
    return random_search(evaluate, k, cfg.n_random, cfg.seed, simplex, results_path, batch)


def search_sampling(cfg: SearchConfig) -> Sampling:
    """How the search decodes every weight point (greedy by default; ``seed`` when sampling)."""
    return Sampling(cfg.max_new_tokens, cfg.do_sample, cfg.temperature, cfg.top_p, cfg.seed)


def describe_iteration(entry: IterationRecord) -> str:
    """One progress line for a finished hierarchical-search iteration (its history entry)."""
    best = ", ".join(f"{x:.4g}" for x in entry["best_point"] or [])
    return (f"iteration {entry['iteration']}: {entry['n_new']} new points, best "
            f"{entry['best_score']:.4f} at ({best})")


def run_search(cfg: SearchConfig,
               on_iteration: Callable[[IterationRecord], None] | None = None) -> SearchResult:
    """Search aggregation weights for the ensemble in ``cfg.ensemble``; write every artifact."""
    cfg.validate()
    out = cfg.resolved_out_dir()
    manifest = EnsembleManifest.load(cfg.ensemble)  # settle every user error before loading
    scorers = build_search_scorers(cfg.objectives, manifest.objectives)
    names = [s.name for s in scorers]
    prompts = load_search_prompts(cfg.data, cfg.column, cfg.n_prompts)
    check_score_weights(cfg.weights, names)
    prepare_out_dir(out, search_fingerprint(cfg, manifest, names, prompts), cfg.fresh)
    save_config(replace(cfg, objectives=_yaml_safe(cfg.objectives), fresh=False), out)
    ensemble, manifest = load_ensemble(cfg.ensemble, device=cfg.device)
    evaluate = make_weight_evaluator(
        ensemble, prompts, scorers, level=cfg.level, sampling=search_sampling(cfg),
        system=cfg.system if cfg.system is not None else manifest.system,
        chunk_size=cfg.chunk_size, score_weights=cfg.weights)
    result = run_method(cfg, evaluate, ensemble.k, SearchDir(out).results, on_iteration)
    write_artifacts(out, result, ensemble.objectives, names, cfg)
    if cfg.save_best:
        store_best_weights(cfg.ensemble, ensemble.objectives, result)
    return result


# ----------------------------------------------------------------------------- artifacts


def _finite(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats (the skipped zero point's -inf) become None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def best_weights(result: SearchResult, expert_names: list[str]) -> dict[str, float]:
    """The best evaluated point (normalised in simplex mode) as {expert: weight}."""
    return {n: float(w) for n, w in zip(expert_names, result.best_point, strict=True)}


def pareto_summary(result: SearchResult, expert_names: list[str],
                   objective_names: list[str]) -> dict[str, Any]:
    """Pareto front (and hypervolume w.r.t. the origin) of every evaluated point's rewards."""
    values = [[r.objectives[n] for n in objective_names] for r in result.evaluated]
    front = pareto_front(values) if values else []
    return {
        "objectives": objective_names, "front_index": front,
        "hypervolume": hypervolume(values, [0.0] * len(objective_names)) if values else 0.0,
        "front": [{"weights": dict(zip(expert_names, result.evaluated[i].point, strict=True)),
                   "objectives": result.evaluated[i].objectives,
                   "score": result.evaluated[i].score} for i in front],
    }


COST_CONVENTIONS = {
    "moalign": "data_moalign = distinct weight points decoded (n_evaluated_total: cached and "
               "resumed points are paid once) x prompts per point (n_prompts)",
    "paper": "data_paper = every grid point of every iteration (n_points_visited: 3^K x I, 135 "
             "for K = 3 and I = 5), as if nothing were cached, x prompts per point (n_prompts); "
             "EMORL Table 1 counts 135 x 32 (17,529 = 13,209 + 135 x 32)",
}
"""The two ways a search's data consumption is counted (`search_cost`)."""


def search_cost(n_evaluated_total: int, n_points_visited: int, n_prompts: int) -> dict[str, Any]:
    """Prompts a search consumed, in moalign's convention and in the EMORL paper's (§6)."""
    return {"n_prompts": n_prompts, "data_moalign": n_evaluated_total * n_prompts,
            "data_paper": n_points_visited * n_prompts, "cost_conventions": COST_CONVENTIONS}


def search_summary(result: SearchResult, expert_names: list[str], cfg: SearchConfig,
                   out: Path) -> dict[str, Any]:
    """summary.json: best weights, score, counts and the search's cumulative cost."""
    records = read_jsonl(SearchDir(out).results)
    seconds = math.fsum(float(r.get("extra", {}).get("seconds", 0.0)) for r in records)
    n_prompts = int(json.loads(SearchDir(out).fingerprint.read_text("utf-8"))["n_prompts"])
    return {
        "method": result.method, "level": cfg.level, "simplex": cfg.resolved_simplex(),
        "experts": expert_names, "best_weights": best_weights(result, expert_names),
        "best_grid_point": list(result.best_grid_point), "best_score": result.best_score,
        "best_objectives": result.best_objectives, "n_evaluations": result.n_evaluations,
        "n_evaluated_total": len(records), "n_points_visited": result.n_points_visited,
        "n_distinct_used": len(result.evaluated), "seconds": round(seconds, 3),
        **search_cost(len(records), result.n_points_visited, n_prompts),
    }


def plot_search(out: Path, result: SearchResult, expert_names: list[str],
                objective_names: list[str], pareto: dict[str, Any]) -> list[Path]:
    """EMORL Figure 4 panels (one per iteration + overview) and the Pareto scatter."""
    d = SearchDir(out)
    for stale in d.iteration_pngs():  # an earlier search may have had more iterations
        stale.unlink()
    paths = plots.plot_search_iterations(result, expert_names, out)
    paths.append(plots.plot_search_overview(result, d.overview_png, expert_names))
    if len(objective_names) >= 2 and result.evaluated:
        values = [[r.objectives[n] for n in objective_names] for r in result.evaluated]
        paths.append(plots.plot_pareto(values, objective_names, pareto["front_index"],
                                       d.pareto_png))
    return paths


def write_artifacts(out: Path, result: SearchResult, expert_names: list[str],
                    objective_names: list[str], cfg: SearchConfig) -> None:
    """best_weights.json, summary.json, history.json, pareto.json and the figures."""
    pareto = pareto_summary(result, expert_names, objective_names)
    d = SearchDir(out)
    atomic_write_json(d.best_weights, best_weights(result, expert_names))
    atomic_write_json(d.summary, search_summary(result, expert_names, cfg, out))
    atomic_write_json(d.history, _finite({"method": result.method, "experts": expert_names,
                                          "history": result.history}))
    atomic_write_json(d.pareto, _finite(pareto))
    if cfg.plots:
        plot_search(out, result, expert_names, objective_names, pareto)


def store_best_weights(run_dir: str | Path, expert_names: list[str],
                       result: SearchResult) -> None:
    """Write the best weights into ensemble.json (only if its experts are still the same)."""
    manifest = EnsembleManifest.load(run_dir)
    if manifest.objectives != list(expert_names):
        raise ConfigError(f"{SeedDir(Path(run_dir)).ensemble_json} changed during the search "
                          f"(experts now {manifest.objectives}); run the search again")
    manifest.best_weights = best_weights(result, expert_names)
    manifest.save(run_dir)
