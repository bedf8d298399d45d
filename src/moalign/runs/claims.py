"""The claims table: each of the papers' claims C1–C6 with its measured evidence and a verdict.

A verdict is one of "holds", "does not hold", "inconclusive at this scale", and the rules are the
same for a success and a failure: a claim holds when the measurement supports it beyond its
uncertainty, does not hold when the measurement contradicts it beyond its uncertainty, and is
inconclusive otherwise. A claim whose artifacts are missing says "not measured in this run" and
is inconclusive. Intervals are 95 % percentile-bootstrap CIs (`evaluation.statistics`) over units
(prompt × evaluation seed × generation run) unless a rule says otherwise. Rewards are compared in
each objective's better direction (a `higher_is_better: false` objective is negated).

C1 each expert raises its own objective over the untrained policy. Per expert k: the paired
   difference expert_k − base on objective k. Holds: every CI lies above 0. Does not hold: some
   CI lies below 0. Otherwise inconclusive.
C2 single-objective experts converge faster and more stably than multi-objective SCST (uniform,
   DynaOpt). Per training seed s: speed gap = mean steps-to-90 % of the baselines − mean of the
   experts (a run without gain counts as its last step), stability gap = mean std of the last
   validations of the baselines − of the experts (`runs.evidence_report.convergence`). CIs
   bootstrap over training seeds (so >= 2 seeds are needed). Holds: both gap CIs lie above 0.
   Does not hold: either gap CI lies below 0. Otherwise inconclusive.
C3 EMORL reaches rewards comparable to the best baseline with less data and time. Best baseline
   = the trained multi-objective baseline (uniform, DynaOpt) with the higher mean reward;
   comparable = the CI of the paired difference EMORL − best lies above −`C3_MARGIN` (0.02
   absolute mean reward); costs are table.json's mean data (prompts) and seconds over training
   seeds, EMORL's being the slowest expert + the search. Holds: comparable and EMORL's mean data
   and time are both lower. Does not hold: the CI lies below −C3_MARGIN, or EMORL needs more data
   or more time. Otherwise inconclusive.
C4 the hierarchical search lands within a margin of the full grid's best point at the fine step
   with a fraction of the evaluations (`seed_<s>/evidence/full_grid.json`). Per seed: gap =
   full best value − the full grid's value at the hierarchical best point (its own best value
   when that is null); margin = the file's `margin` (default 0.02). Holds: every seed has
   gap <= margin and fewer hierarchical than full evaluations. Does not hold: every seed
   fails one of them. Mixed seeds: inconclusive. (Search values are means over validation
   prompts without stored per-prompt values, so no CI.)
C5 MOLMA beats SO-weighted on both objectives' win rates: in the MOLMA run named by the config's
   `evidence.molma_run` (absolute, or relative to the run folder; a bare sibling name also
   resolves next to the run folder), per objective the win rate of MOLMA over SO-weighted on
   paired units (a tie counts half) with a bootstrap CI that resamples prompts (clusters of a
   prompt's seeds and runs). Holds: every CI lies above 0.5.
   Does not hold: some CI lies below 0.5. Otherwise inconclusive.
C6 adding an objective later matches a study that had it from the start, without retraining the
   others (`seed_<s>/evidence/add_objective.json`). Per seed: it matches when
   after.best_value >= from_start.best_value − margin (the file's `margin`, default 0.02) and
   `experts_unchanged` is true. Holds: every seed matches. Does not hold: no seed matches.
   Mixed seeds: inconclusive.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moalign.core.config import load_yaml
from moalign.core.io import read_utf8
from moalign.evaluation.statistics import Interval, align_pairs, bootstrap_ci
from moalign.runs.evidence_report import (
    MEAN,
    Convergence,
    SystemScores,
    convergence_rows,
    load_scores,
    paired,
)
from moalign.runs.layout import RunDir
from moalign.runs.render import Section, Table

HOLDS, FAILS, OPEN = "holds", "does not hold", "inconclusive at this scale"
NOT_MEASURED = "not measured in this run"
C3_MARGIN = 0.02  # "comparable" mean reward: EMORL − best baseline CI above −0.02
DEFAULT_MARGIN = 0.02  # C4 / C6 when the evidence file states none
TRAINED_BASELINES = ("uniform", "dynaopt")
SO_WEIGHTED = "so_weighted"

STATEMENTS = {
    "C1": "each expert raises its own objective over the untrained policy",
    "C2": "single-objective experts converge faster and more stably than multi-objective SCST "
          "(uniform, DynaOpt)",
    "C3": "EMORL aggregation reaches rewards comparable to the best baseline with less data and "
          "time",
    "C4": "the hierarchical search lands within a margin of the full grid's best point with a "
          "fraction of the evaluations",
    "C5": "MOLMA beats SO-weighted on both objectives' win rates",
    "C6": "adding an objective later matches a study that had it from the start, without "
          "retraining the others",
}


@dataclass(frozen=True)
class Claim:
    claim: str  # "C1" ... "C6"
    statement: str
    evidence: str
    verdict: str


def _claim(cid: str, evidence: str, verdict: str) -> Claim:
    return Claim(cid, STATEMENTS[cid], evidence, verdict)


def _missing(cid: str, what: str) -> Claim:
    return _claim(cid, f"{NOT_MEASURED} ({what})", OPEN)


def _json(path: Path) -> Any:
    """A JSON artifact, or None when absent or unreadable (a claim is then not measured)."""
    try:
        return json.loads(read_utf8(path)) if path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _all_or_none(flags: list[bool]) -> str:
    """Per-seed outcomes -> verdict: all true holds, all false fails, mixed is open."""
    if flags and all(flags):
        return HOLDS
    if flags and not any(flags):
        return FAILS
    return OPEN


def _by_sign(signs: list[int]) -> str:
    """CI signs (+1 above, −1 below, 0 contains) of sub-claims that must all be positive."""
    if signs and all(s > 0 for s in signs):
        return HOLDS
    if any(s < 0 for s in signs):
        return FAILS
    return OPEN


def objective_signs(config: dict[str, Any] | None) -> dict[str, int]:
    """+1 / −1 per objective name of a study config: −1 for `higher_is_better: false`."""
    signs: dict[str, int] = {}
    for o in (config or {}).get("objectives", []) or []:
        if isinstance(o, dict) and o.get("name"):
            signs[str(o["name"])] = -1 if o.get("higher_is_better") is False else 1
    return signs


def _oriented(s: SystemScores, sign: int) -> SystemScores:
    if sign > 0:
        return s
    rows = [{**r, "rewards": {k: -float(v) for k, v in r["rewards"].items()}} for r in s.rows]
    return SystemScores(s.key, s.label, s.objectives, rows)


# ----------------------------------------------------------------------------- C1 - C3


def claim_c1(scores: dict[str, SystemScores], signs: dict[str, int]) -> Claim:
    if "base" not in scores:
        return _missing("C1", "no generations of the untrained policy")
    names = scores["base"].objectives
    parts, flags = [], []
    for n in names:
        expert = scores.get(f"expert_{n}")
        if expert is None:
            return _missing("C1", f"no generations of expert_{n}")
        sign = signs.get(n, 1)
        ci = paired(_oriented(expert, sign), _oriented(scores["base"], sign), n)
        if ci is None:
            return _missing("C1", f"expert_{n} and base share no units")
        parts.append(f"{n}: expert − base = {ci.format(4)}")
        flags.append(ci.excludes_zero())
    return _claim("C1", "; ".join(parts), _by_sign(flags))


def _per_seed(rows: list[Convergence], pick: Callable[[Convergence], float]
              ) -> dict[str, tuple[list[float], list[float]]]:
    """seed -> (expert values, baseline values)."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for c in rows:
        experts, baselines = out.setdefault(c.seed, ([], []))
        if c.method.startswith("expert: "):
            experts.append(pick(c))
        elif c.method in TRAINED_BASELINES:
            baselines.append(pick(c))
    return {s: v for s, v in out.items() if v[0] and v[1]}


def _gap(rows: list[Convergence], pick: Callable[[Convergence], float]) -> Interval | None:
    """CI over training seeds of mean(baselines) − mean(experts)."""
    seeds = _per_seed(rows, pick)
    gaps = [sum(b) / len(b) - sum(e) / len(e) for e, b in seeds.values()]
    return bootstrap_ci(gaps) if gaps else None


def claim_c2(rows: list[Convergence]) -> Claim:
    speed = _gap(rows, lambda c: float(c.last_step if c.steps is None else c.steps))
    stable = _gap(rows, lambda c: c.stability)
    if speed is None or stable is None:
        return _missing("C2", "needs the learning curves of experts and of uniform / DynaOpt")
    seeds = len(_per_seed(rows, lambda c: c.stability))
    finals: dict[str, list[float]] = {}
    for c in rows:
        finals.setdefault(c.method, []).append(c.final)
    spread = ", ".join(f"{m} {_sd(v):.4f}" for m, v in finals.items() if len(v) > 1)
    evidence = (f"baselines − experts over {seeds} training seed(s): steps to 90 % = "
                f"{speed.format(1)}; std of the last validations = {stable.format(4)}"
                + (f"; std of the final reward across seeds: {spread}" if spread else ""))
    return _claim("C2", evidence, _by_sign([speed.excludes_zero(), stable.excludes_zero()]))


def _sd(v: list[float]) -> float:
    m = sum(v) / len(v)
    return (sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5


def _cost(table: dict[str, Any], key: str, what: str) -> float | None:
    row = next((m for m in table.get("methods", []) if m.get("key") == key), None)
    value = (row or {}).get(what)
    return float(value[0]) if isinstance(value, list) and value[0] is not None else None


def claim_c3(scores: dict[str, SystemScores], table: dict[str, Any] | None) -> Claim:
    baselines = [k for k in TRAINED_BASELINES if k in scores]
    if "emorl" not in scores or not baselines or table is None:
        return _missing("C3", "needs EMORL and uniform / DynaOpt generations and eval/table.json")
    means = {k: sum(scores[k].values(MEAN).values()) / len(scores[k].rows) for k in baselines}
    best = max(baselines, key=lambda k: means[k])
    ci = paired(scores["emorl"], scores[best], MEAN)
    costs = {(k, w): _cost(table, k, w) for k in ("emorl", best) for w in ("data", "seconds")}
    if ci is None or None in costs.values():
        return _missing("C3", "no shared units or no training costs in eval/table.json")
    e_data, e_time = float(costs[("emorl", "data")] or 0), float(costs[("emorl", "seconds")] or 0)
    b_data, b_time = float(costs[(best, "data")] or 0), float(costs[(best, "seconds")] or 0)
    cheaper = e_data < b_data and e_time < b_time
    evidence = (f"EMORL − {scores[best].label} (best baseline) mean reward = {ci.format(4)} "
                f"(margin {C3_MARGIN}); data {e_data:.0f} vs {b_data:.0f} prompts; time "
                f"{e_time:.1f} vs {b_time:.1f} s")
    if (ci.known and ci.hi < -C3_MARGIN) or not cheaper:
        return _claim("C3", evidence, FAILS)
    if ci.known and ci.lo > -C3_MARGIN:
        return _claim("C3", evidence, HOLDS)
    return _claim("C3", evidence, OPEN)


# ----------------------------------------------------------------------------- C4 - C6


def _evidence_files(run_dir: Path, name: str) -> dict[str, dict[str, Any]]:
    out = {}
    for sd in RunDir(run_dir).seed_dirs():
        path = (sd.evidence.full_grid_json if name == "full_grid" else
                sd.evidence.add_objective_json)
        data = _json(path)
        if isinstance(data, dict):
            out[sd.root.name] = data
    return out


def claim_c4(run_dir: Path) -> Claim:
    files = _evidence_files(run_dir, "full_grid")
    if not files:
        return _missing("C4", "no seed_<s>/evidence/full_grid.json")
    parts, flags = [], []
    try:
        for seed, d in files.items():
            full, hier = d["full"], d["hierarchical"]
            margin = float(d.get("margin", DEFAULT_MARGIN))
            on_grid = hier.get("best_value_on_full_grid")
            value = float(hier["best_value"] if on_grid is None else on_grid)
            gap = float(full["best_value"]) - value
            fewer = int(hier["n_evals"]) < int(full["n_evals"])
            flags.append(gap <= margin and fewer)
            parts.append(f"{seed}: full grid (step {d.get('step', '?')}) best "
                         f"{float(full['best_value']):.4f} in {full['n_evals']} evaluations; "
                         f"hierarchical {value:.4f} in {hier['n_evals']} (gap {gap:+.4f}, "
                         f"margin {margin})")
    except (KeyError, TypeError, ValueError) as e:
        return _missing("C4", f"full_grid.json lacks {e}")
    return _claim("C4", "; ".join(parts), _all_or_none(flags))


def claim_c6(run_dir: Path) -> Claim:
    files = _evidence_files(run_dir, "add_objective")
    if not files:
        return _missing("C6", "no seed_<s>/evidence/add_objective.json")
    parts, flags = [], []
    try:
        for seed, d in files.items():
            margin = float(d.get("margin", DEFAULT_MARGIN))
            after, start = float(d["after"]["best_value"]), float(d["from_start"]["best_value"])
            unchanged = bool(d.get("experts_unchanged"))
            flags.append(after >= start - margin and unchanged)
            parts.append(f"{seed}: added {d.get('added', '?')}: best {after:.4f} vs "
                         f"{start:.4f} from the start (gap {after - start:+.4f}, margin "
                         f"{margin}); experts unchanged: {'yes' if unchanged else 'no'}; new "
                         f"expert {float(d.get('new_expert_seconds', 0.0)):.0f} s")
    except (KeyError, TypeError, ValueError) as e:
        return _missing("C6", f"add_objective.json lacks {e}")
    return _claim("C6", "; ".join(parts), _all_or_none(flags))


def molma_run_dir(run_dir: Path, config: dict[str, Any] | None) -> Path | None:
    """The MOLMA run named by the config's `evidence.molma_run` (None when unset): absolute, or
    relative to the run folder (`../molma-evidence`), or else a sibling of it."""
    evidence = (config or {}).get("evidence")
    name = evidence.get("molma_run") if isinstance(evidence, dict) else None
    if not name:
        return None
    path = Path(str(name)).expanduser()
    if path.is_absolute():
        return path
    here = run_dir.resolve() / path  # the config's convention (e.g. ../molma-evidence)
    beside = run_dir.resolve().parent / path  # a bare sibling name (e.g. molma-evidence)
    return here if here.is_dir() or not beside.is_dir() else beside


def win_outcomes(a: dict[Any, float], b: dict[Any, float]) -> tuple[list[Any], list[float]]:
    """Per shared unit: 1 when a wins, 0.5 on a tie, 0 when a loses (MOLMA §4.5.1)."""
    keys, xa, xb = align_pairs(a, b)
    return keys, [1.0 if x > y else 0.5 if x == y else 0.0 for x, y in zip(xa, xb, strict=True)]


def claim_c5(molma_dir: Path | None) -> Claim:
    if molma_dir is None:
        return _missing("C5", "the config names no evidence.molma_run")
    scores = load_scores(molma_dir, _json(RunDir(molma_dir).table))
    if "molma" not in scores or SO_WEIGHTED not in scores:
        return _missing("C5", f"no MOLMA and SO-weighted generations in {molma_dir}")
    signs = objective_signs(_yaml(RunDir(molma_dir).config_yaml))
    parts, flags = [], []
    for n in scores["molma"].objectives:
        sign = signs.get(n, 1)
        keys, wins = win_outcomes(_oriented(scores["molma"], sign).values(n),
                                  _oriented(scores[SO_WEIGHTED], sign).values(n))
        if not wins:
            return _missing("C5", "MOLMA and SO-weighted share no units")
        ci = bootstrap_ci(wins, groups=[k[2] for k in keys])  # clusters: prompts
        parts.append(f"{n}: win rate {ci.format(3)} over {ci.n} responses")
        flags.append(1 if ci.known and ci.lo > 0.5 else -1 if ci.known and ci.hi < 0.5 else 0)
    return _claim("C5", "; ".join(parts), _by_sign(flags))


# ----------------------------------------------------------------------------- table


def _yaml(path: Path) -> dict[str, Any] | None:
    data = load_yaml(path) if path.is_file() else None
    return data if isinstance(data, dict) else None


def compute_claims(run_dir: str | Path, runs: dict[str, list[Path]] | None = None
                   ) -> list[Claim]:
    """C1–C6 of an EMORL run directory (only C5 for a MOLMA run, measured on itself).

    `runs` = method label -> metrics.jsonl per seed (`runs.report.training_runs`), for C2.
    """
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    config, table = _yaml(run.config_yaml), _json(run.table)
    kind = (_json(run.study_json) or config or {}).get("kind")
    if kind == "molma":
        return [claim_c5(run_dir)]
    scores = load_scores(run_dir, table)
    signs = objective_signs(config)
    return [claim_c1(scores, signs), claim_c2(convergence_rows(runs or {})),
            claim_c3(scores, table), claim_c4(run_dir),
            claim_c5(molma_run_dir(run_dir, config)), claim_c6(run_dir)]


def claims_table(claims: list[Claim]) -> Table:
    return Table(["claim", "statement", "evidence (95 % CI)", "verdict"],
                 [[c.claim, c.statement, c.evidence, c.verdict] for c in claims],
                 "Verdict rules: moalign.runs.claims (holds / does not hold when the interval "
                 "excludes the claimed boundary on the claimed / the other side; otherwise "
                 "inconclusive at this scale).",
                 {(i, 3) for i, c in enumerate(claims) if c.verdict != OPEN})


def claims_section(claims: list[Claim]) -> Section:
    sec = Section("claims", "Claims of the papers, measured")
    sec.blocks.append(claims_table(claims))
    return sec


def claims_markdown(claims: list[Claim]) -> str:
    """The claims table as Markdown (for the README)."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| claim | statement | evidence (95 % CI) | verdict |", "|---|---|---|---|"]
    lines += [f"| {c.claim} | {cell(c.statement)} | {cell(c.evidence)} | **{c.verdict}** |"
              for c in claims]
    return "\n".join(lines) + "\n"
