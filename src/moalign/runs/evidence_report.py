"""The report's statistics (issue "evidence"): confidence intervals, paired comparisons, learning
curve convergence and the reward-hacking audit, from run artifacts only.

Units. Every system answers the same test prompts in every evaluation seed and generation run, so
one unit = one (seed, run, prompt index) response with its reward per objective
(`eval/generations/<system>.jsonl`). The mean reward of a unit is the plain mean over objectives,
as in `eval/table.json`. Intervals are 95 % percentile-bootstrap CIs over the flattened units
(`moalign.evaluation.statistics.bootstrap_ci`, 2000 resamples, seed 0); paired differences pair
two systems' units by (seed, run, prompt index).

Convergence. From each trained unit's `metrics.jsonl`: the validation curve (`val/mean` records;
MOLMA runs, which log no validations, use the mean rollout reward per iteration), its final value
(mean of the last `FINAL_WINDOW` points), the step at which it first covers `FRACTION` of its gain
over the first validation (`statistics.steps_to_fraction`), the prompts consumed by that step
(the logged `data_consumed`, else step × the run's batch size) and the std of the last
`FINAL_WINDOW` points (stability).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moalign.core.config import load_yaml
from moalign.core.errors import ConfigError
from moalign.core.io import read_jsonl
from moalign.evaluation.audit import COPY_WORDS, REPEAT_N, audit
from moalign.evaluation.statistics import (
    Interval,
    align_pairs,
    bootstrap_ci,
    final_value,
    paired_difference,
    steps_to_fraction,
    tail_std,
)
from moalign.runs.layout import SEED_PREFIX, RunDir, UnitDir
from moalign.runs.render import Section, Table, Text

FRACTION = 0.9  # learning curves: steps to this fraction of the gain to the final value
FINAL_WINDOW = 3  # validations averaged into a curve's final value and its stability
MEAN = "mean"  # the per-unit mean reward over objectives
REFERENCES = ("emorl", "molma")  # the system each study compares against the others
BASELINE_ORDER = ("base", "uniform", "dynaopt", "soup", "logits", "so_weighted", "so_piecewise")

UnitKey = tuple[int, int, int]  # (evaluation seed, generation run, prompt index)


# ----------------------------------------------------------------------------- units


@dataclass
class SystemScores:
    """One system's evaluated responses: rows of eval/generations/<system>.jsonl."""

    key: str
    label: str
    objectives: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def values(self, objective: str = MEAN) -> dict[UnitKey, float]:
        """Unit -> reward on `objective` (or the mean over objectives for `MEAN`)."""
        out = {}
        for r in self.rows:
            got = r["rewards"]
            v = (sum(float(got[o]) for o in self.objectives) / len(self.objectives)
                 if objective == MEAN else float(got[objective]))
            out[(int(r.get("seed", 0)), int(r.get("run", 0)), int(r.get("index", 0)))] = v
        return out


def load_scores(run_dir: Path, table: dict[str, Any] | None) -> dict[str, SystemScores]:
    """Every system with a generations file, in table.json's order; {} when none."""
    run = RunDir(run_dir)
    methods = (table or {}).get("methods", [])
    labels = {m["key"]: m["label"] for m in methods}
    files = {f.stem: f for f in run.generation_files()}
    objectives = list((table or {}).get("objectives", []))
    out: dict[str, SystemScores] = {}
    for key in [*(k for k in labels if k in files), *sorted(set(files) - set(labels))]:
        rows = [r for r in read_jsonl(files[key]) if isinstance(r.get("rewards"), dict)]
        names = objectives or (list(rows[0]["rewards"]) if rows else [])
        rows = [r for r in rows if all(_finite(r["rewards"].get(n)) for n in names)]
        if rows and names:
            out[key] = SystemScores(key, labels.get(key, key), names, rows)
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def reference_key(scores: dict[str, SystemScores]) -> str | None:
    return next((k for k in REFERENCES if k in scores), None)


def paired(a: SystemScores, b: SystemScores, objective: str = MEAN) -> Interval | None:
    """CI of a − b over their shared units (None when they share fewer than one)."""
    _, xa, xb = align_pairs(a.values(objective), b.values(objective))
    return paired_difference(xa, xb) if xa else None


def _std(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    m = sum(values) / n
    return (sum((v - m) ** 2 for v in values) / (n - 1)) ** 0.5


def _cell(values: list[float]) -> str:
    ci = bootstrap_ci(values)
    return f"{ci.mean:.4f} ± {_std(values):.4f} [{_bounds(ci)}]"


def _bounds(ci: Interval) -> str:
    return f"{ci.lo:.4f}, {ci.hi:.4f}" if ci.known else "n/a"


def _signed(ci: Interval | None) -> str:
    if ci is None:
        return "—"
    if not ci.known:
        return f"{ci.mean:+.4f} [n/a]"
    return f"{ci.mean:+.4f} [{ci.lo:+.4f}, {ci.hi:+.4f}]"


# ----------------------------------------------------------------------------- sections


def statistics_section(scores: dict[str, SystemScores]) -> Section:
    sec = Section("statistics", "Rewards with 95 % bootstrap confidence intervals")
    if not scores:
        sec.note = "no eval/generations/*.jsonl with per-prompt rewards yet."
        return sec
    names = next(iter(scores.values())).objectives
    rows = []
    for s in scores.values():
        cells = [_cell(list(s.values(o).values())) for o in [*names, MEAN]]
        rows.append([s.label, *cells, str(len(s.rows))])
    sec.blocks.append(Table(["system", *names, "mean", "units"], rows,
                            "mean ± sample std [95 % percentile-bootstrap CI of the mean, 2000 "
                            "resamples] over units = test prompts × evaluation seeds × "
                            "generation runs."))
    return sec


def paired_section(scores: dict[str, SystemScores]) -> Section:
    ref = reference_key(scores)
    title = f"Paired comparisons: {scores[ref].label if ref else 'EMORL'} against each system"
    sec = Section("paired", title)
    if ref is None or len(scores) < 2:
        sec.note = "needs the per-prompt generations of the EMORL (or MOLMA) system and another."
        return sec
    a = scores[ref]
    others = [k for k in BASELINE_ORDER if k in scores and k != ref]
    others += [k for k in scores if k not in others and k != ref]
    rows, bold = [], set()
    for i, key in enumerate(others):
        cells = []
        for j, o in enumerate([*a.objectives, MEAN], start=1):
            ci = paired(a, scores[key], o)
            cells.append(_signed(ci))
            if ci is not None and ci.excludes_zero():
                bold.add((i, j))
        rows.append([f"{a.label} − {scores[key].label}", *cells])
    sec.blocks.append(Table(["difference", *a.objectives, "mean"], rows,
                            "Mean of the per-unit difference (same prompt, seed and generation "
                            "run) with its 95 % bootstrap CI; bold where the CI excludes 0.",
                            bold))
    return sec


# ----------------------------------------------------------------------------- convergence


@dataclass(frozen=True)
class Convergence:
    """One trained run's learning curve summary."""

    method: str
    seed: str
    steps: int | None  # first step at FRACTION of the gain; None: no gain over the first point
    prompts: int | None  # prompts consumed by then
    final: float  # mean of the last FINAL_WINDOW points
    stability: float  # std of the last FINAL_WINDOW points
    last_step: int
    n_points: int


def learning_curve(rows: list[dict[str, Any]]) -> list[tuple[int, int | None, float]]:
    """(step, prompts consumed, reward) points: validation means, else (MOLMA) the mean rollout
    reward of each iteration's first record."""
    val = [r for r in rows if r.get("val/mean") is not None]
    if val:
        return [(int(r.get("step", 0)), r.get("data_consumed"), float(r["val/mean"]))
                for r in val]
    seen: dict[int, tuple[int, int | None, float]] = {}
    for r in rows:
        keys = [k for k in r if k.startswith("reward/")]
        it = r.get("iteration", r.get("step"))
        if keys and it is not None and int(it) not in seen:
            seen[int(it)] = (int(it), r.get("data_consumed"),
                             sum(float(r[k]) for k in keys) / len(keys))
    return list(seen.values())


def _batch(metrics: Path) -> int | None:
    cfg = UnitDir(metrics.parent).config
    try:
        data = load_yaml(cfg) if cfg.is_file() else None
    except ConfigError:  # an unreadable config: the prompts column stays empty
        return None
    if not isinstance(data, dict):
        return None
    value = data.get("batch_size", data.get("memory"))
    return int(value) if isinstance(value, int) else None


def _seed_of(metrics: Path) -> str:
    seeds = [p.name for p in metrics.parents if p.name.startswith(SEED_PREFIX)]
    return seeds[0].removeprefix(SEED_PREFIX) if seeds else "—"


def convergence(method: str, metrics: Path) -> Convergence | None:
    """The curve summary of one metrics.jsonl (None when it holds no reward record)."""
    curve = learning_curve(read_jsonl(metrics))
    if not curve:
        return None
    steps = [c[0] for c in curve]
    values = [c[2] for c in curve]
    hit = steps_to_fraction(steps, values, FRACTION, FINAL_WINDOW)
    prompts = None
    if hit is not None:
        logged = next(c[1] for c in curve if c[0] == hit)
        batch = _batch(metrics) if logged is None else None
        prompts = int(logged) if logged is not None else (hit * batch if batch else None)
    return Convergence(method, _seed_of(metrics), hit, prompts,
                       final_value(values, FINAL_WINDOW), tail_std(values, FINAL_WINDOW),
                       steps[-1], len(curve))


def convergence_rows(runs: dict[str, list[Path]]) -> list[Convergence]:
    """Every trained run's summary (method label -> metrics.jsonl per seed, as
    `runs.report.training_runs` returns)."""
    out = []
    for method, paths in runs.items():
        for p in paths:
            c = convergence(method, p)
            if c is not None:
                out.append(c)
    return out


def convergence_section(rows: list[Convergence]) -> Section:
    sec = Section("convergence", f"Learning curves: steps to {FRACTION:.0%} of the final reward")
    if not rows:
        sec.note = "no metrics.jsonl with validation or reward records yet."
        return sec
    body = [[c.method, c.seed, "no gain" if c.steps is None else str(c.steps),
             "—" if c.prompts is None else str(c.prompts), f"{c.final:.4f}",
             f"{c.stability:.4f}", str(c.last_step), str(c.n_points)] for c in rows]
    sec.blocks.append(Table(
        ["method", "seed", "steps", "prompts", "final reward", "std of last points", "last step",
         "points"], body,
        f"Final reward = mean of the last {FINAL_WINDOW} validations (SCST: greedy validation "
        f"mean reward; MOLMA: mean rollout reward per iteration). Steps = first step whose "
        f"reward covers {FRACTION:.0%} of the gain from the first validation to the final "
        "reward (first crossing); prompts = prompts consumed by that step; "
        "'no gain' = the curve ends at or below its start."))
    return sec


# ----------------------------------------------------------------------------- audit


def _unit_mean(s: SystemScores, row: dict[str, Any]) -> float:
    return sum(float(row["rewards"][o]) for o in s.objectives) / len(s.objectives)


def _top(s: SystemScores, k: int = 3) -> list[dict[str, Any]]:
    """The k rows with the highest mean reward (stable: earlier rows first on ties)."""
    return sorted(s.rows, key=lambda r: -_unit_mean(s, r))[:k]


def audit_section(scores: dict[str, SystemScores]) -> Section:
    sec = Section("audit", "Reward-hacking audit")
    if not scores:
        sec.note = "no eval/generations/*.jsonl yet."
        return sec
    rows = []
    for s in scores.values():
        a = audit([r["prompt"] for r in s.rows], [r["response"] for r in s.rows])
        ln = a["length"]
        rows.append([s.label, f"{a['repetition_rate']:.1%}", f"{a['repeated_token_share']:.1%}",
                     f"{ln['mean']:.1f} / {ln['median']:.0f} / {ln['p10']:.0f}–{ln['p90']:.0f}",
                     f"{a['prompt_copy_rate']:.1%}", f"{a['distinct1']:.3f}",
                     f"{a['distinct2']:.3f}", f"{a['empty_rate']:.1%}"])
    sec.blocks.append(Table(
        ["system", f"repeated {REPEAT_N}-gram", "repeated tokens", "words mean / median / "
         "p10–p90", "prompt copy", "distinct-1", "distinct-2", "empty"], rows,
        f"Share of responses with a word {REPEAT_N}-gram occurring twice; mean share of tokens "
        f"inside a repeated {REPEAT_N}-gram; response length in words; share of responses "
        f"sharing a run of >= {COPY_WORDS} consecutive words with the client's statement; "
        "distinct n-grams / all n-grams over all of the system's responses (evaluation.audit)."))
    sec.blocks.append(Text("Highest-reward outputs of each system, verbatim (top 3 units by mean "
                           "reward over objectives): a gamed reward shows here first."))
    for s in scores.values():
        body = [[r["prompt"], r["response"],
                 ", ".join(f"{o} {float(r['rewards'][o]):.3f}" for o in s.objectives)
                 + f"; mean {_unit_mean(s, r):.3f} (seed {r.get('seed', 0)}, run "
                 f"{r.get('run', 0)})"] for r in _top(s)]
        sec.blocks.append(Table(["prompt", f"response ({s.label})", "rewards"], body))
    return sec
