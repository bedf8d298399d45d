"""Claims C1–C6 on hand-made run directories (one of each verdict), the report's statistics
sections on the v0.1 fixture, and learning-curve convergence against hand counts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from moalign.runs.claims import (
    FAILS,
    HOLDS,
    NOT_MEASURED,
    OPEN,
    Claim,
    claims_markdown,
    compute_claims,
)
from moalign.runs.evidence_report import convergence
from moalign.runs.report import build_report, training_runs

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "v0_1_run"
OBJ = ["a", "b"]
N_PROMPTS = 12


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _rows(rewards: dict[str, list[float]], seeds: tuple[int, ...] = (0, 1)) -> list[dict]:
    """Generations: every seed answers prompt i with rewards[o][i]."""
    return [{"seed": s, "run": 0, "index": i, "prompt": f"p{i}", "response": f"r{i} s{s}",
             "rewards": {o: rewards[o][i] for o in rewards}}
            for s in seeds for i in range(N_PROMPTS)]


def _noise(i: int) -> float:
    return ((i * 7) % 5 - 2) / 100.0  # -0.02 .. 0.02, mean 0 over 5 consecutive prompts


def _curve(path: Path, values: list[float], every: int = 10, batch: int = 4) -> None:
    _jsonl(path, [{"step": k * every, "data_consumed": k * every * batch, "val/mean": v}
                  for k, v in enumerate(values)])


FAST = [0.1, 0.6, 0.62, 0.61, 0.62, 0.62]  # 90 % of the gain at step 10, flat tail
SLOW = [0.1, 0.2, 0.3, 0.5, 0.7, 0.6]  # reached at step 30, noisy tail


def make_emorl_run(root: Path, *, c1: float = 0.1, c2: str = "fast", emorl_gap: float = 0.0,
                   emorl_spread: float = 0.0, emorl_cost: float = 10.0,
                   grid_gaps: tuple[float, ...] = (0.01,), add_gaps: tuple[float, ...] = (0.0,),
                   molma: str | None = None) -> Path:
    """An EMORL run directory with controllable effects (no models)."""
    run = root / "emorl"
    base = {o: [0.5 + _noise(i + k) for i in range(N_PROMPTS)] for k, o in enumerate(OBJ)}
    systems = {"base": base,
               **{f"expert_{o}": {p: [v + (c1 if p == o else 0.0) for v in base[p]] for p in OBJ}
                  for o in OBJ},
               "uniform": {o: [v + 0.05 for v in base[o]] for o in OBJ},
               "dynaopt": {o: [v + 0.03 for v in base[o]] for o in OBJ}}
    systems["emorl"] = {o: [v + emorl_gap + emorl_spread * _noise(i)
                            for i, v in enumerate(systems["uniform"][o])] for o in OBJ}
    methods = [{"key": k, "label": k, "data": [emorl_cost if k == "emorl" else 20.0, 0.0],
                "seconds": [emorl_cost if k == "emorl" else 20.0, 0.0]} for k in systems]
    _write(run / "eval" / "table.json", {"objectives": OBJ, "methods": methods, "seeds": [0, 1],
                                         "runs": 1, "n_prompts": N_PROMPTS})
    for key, rewards in systems.items():
        _jsonl(run / "eval" / "generations" / f"{key}.jsonl", _rows(rewards))
    _write(run / "study.json", {"kind": "emorl", "objectives": OBJ})
    config: dict[str, Any] = {"kind": "emorl", "objectives": OBJ}
    if molma:
        config["evidence"] = {"molma_run": "../molma"}  # relative to the run folder
        make_molma_run(root / "molma", molma)
    (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for s in (0, 1):
        expert_curve, baseline_curve = (FAST, SLOW) if c2 == "fast" else (SLOW, FAST)
        for o in OBJ:
            _curve(run / f"seed_{s}" / "experts" / o / "metrics.jsonl", expert_curve)
        for b in ("uniform", "dynaopt"):
            _curve(run / f"seed_{s}" / "baselines" / b / "metrics.jsonl", baseline_curve)
    for s, gap in enumerate(grid_gaps):
        _write(run / f"seed_{s}" / "evidence" / "full_grid.json", {
            "objectives": OBJ, "step": 0.125, "margin": 0.02,
            "full": {"n_evals": 165, "best_weights": [0.5, 0.5], "best_value": 0.61,
                     "seconds": 400.0},
            "hierarchical": {"n_evals": 40, "best_weights": [0.5, 0.5], "best_value": 0.7,
                             "best_value_on_full_grid": 0.61 - gap, "seconds": 90.0}})
    for s, gap in enumerate(add_gaps):
        _write(run / f"seed_{s}" / "evidence" / "add_objective.json", {
            "added": "b", "kept": ["a"], "margin": 0.02,
            "before": {"best_weights": [1.0], "best_value": 0.5, "n_evals": 3},
            "after": {"best_weights": [0.5, 0.5], "best_value": 0.6 + gap, "n_evals": 9,
                      "seconds": 30.0},
            "from_start": {"best_weights": [0.5, 0.5], "best_value": 0.6},
            "experts_unchanged": True, "new_expert_seconds": 300.0})
    return run


def make_molma_run(run: Path, outcome: str) -> None:
    so = {o: [0.5 + _noise(i) for i in range(N_PROMPTS)] for o in OBJ}
    shift = {"wins": {"a": 0.1, "b": 0.1}, "loses": {"a": 0.1, "b": -0.1},
             "ties": {"a": 0.0, "b": 0.0}}[outcome]
    molma = {o: [v + shift[o] for v in so[o]] for o in OBJ}
    _jsonl(run / "eval" / "generations" / "molma.jsonl", _rows(molma))
    _jsonl(run / "eval" / "generations" / "so_weighted.jsonl", _rows(so))
    _write(run / "study.json", {"kind": "molma"})


def by_id(claims: list[Claim]) -> dict[str, Claim]:
    return {c.claim: c for c in claims}


def test_every_claim_holds_on_a_run_that_supports_it(tmp_path: Path) -> None:
    run = make_emorl_run(tmp_path, molma="wins")
    claims = by_id(compute_claims(run, training_runs(run)))
    assert {k: c.verdict for k, c in claims.items()} == {f"C{i}": HOLDS for i in range(1, 7)}
    assert "a: expert − base = 0.1000 [0.1000, 0.1000]" in claims["C1"].evidence
    # FAST: final 0.6167, target 0.1 + 0.9 * 0.5167 = 0.565 -> step 10; SLOW: final 0.6,
    # target 0.55 -> step 40; tail stds 0.0047 and 0.0816
    assert "steps to 90 % = 30.0 [30.0, 30.0]" in claims["C2"].evidence
    assert "std of the last validations = 0.0769 [0.0769, 0.0769]" in claims["C2"].evidence
    assert "win rate 1.000 [1.000, 1.000]" in claims["C5"].evidence
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    config["evidence"]["molma_run"] = "molma"  # a bare sibling name resolves too
    (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert by_id(compute_claims(run))["C5"].verdict == HOLDS
    molma = compute_claims(tmp_path / "molma")  # a MOLMA run measures C5 on itself
    assert [(c.claim, c.verdict) for c in molma] == [("C5", HOLDS)]


def test_every_claim_fails_on_a_run_that_contradicts_it(tmp_path: Path) -> None:
    run = make_emorl_run(tmp_path, c1=-0.1, c2="slow", emorl_gap=-0.1, grid_gaps=(0.05,),
                         add_gaps=(-0.05,), molma="loses")
    claims = by_id(compute_claims(run, training_runs(run)))
    assert {k: c.verdict for k, c in claims.items()} == {f"C{i}": FAILS for i in range(1, 7)}


def test_claims_are_inconclusive_when_the_evidence_is_mixed(tmp_path: Path) -> None:
    # EMORL − uniform = -0.02 + noise: its CI straddles the margin -0.02
    run = make_emorl_run(tmp_path, c1=0.0, emorl_gap=-0.02, emorl_spread=1.0, grid_gaps=(0.0, 0.05),
                         add_gaps=(0.0, -0.05), molma="ties")
    shutil.rmtree(run / "seed_1" / "experts")  # C2 on one seed: no interval
    claims = by_id(compute_claims(run, training_runs(run)))
    assert {k: c.verdict for k, c in claims.items()} == {f"C{i}": OPEN for i in range(1, 7)}
    assert "[n/a]" in claims["C2"].evidence


def test_c3_fails_when_emorl_costs_more(tmp_path: Path) -> None:
    run = make_emorl_run(tmp_path, emorl_cost=30.0)
    assert by_id(compute_claims(run))["C3"].verdict == FAILS


def test_c6_fails_when_the_experts_were_retrained(tmp_path: Path) -> None:
    run = make_emorl_run(tmp_path)
    path = run / "seed_0" / "evidence" / "add_objective.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    _write(path, {**data, "experts_unchanged": False})
    c6 = by_id(compute_claims(run))["C6"]
    assert c6.verdict == FAILS and "experts unchanged: no" in c6.evidence


def test_lower_is_better_objective_is_compared_negated(tmp_path: Path) -> None:
    run = make_emorl_run(tmp_path, c1=-0.1)
    config = {"kind": "emorl", "objectives": [{"name": o, "kind": "python",
                                               "higher_is_better": False} for o in OBJ]}
    (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert by_id(compute_claims(run))["C1"].verdict == HOLDS


def test_missing_artifacts_are_not_measured(tmp_path: Path) -> None:
    run = tmp_path / "empty"
    run.mkdir()
    _write(run / "study.json", {"kind": "emorl"})
    claims = compute_claims(run)
    assert [c.claim for c in claims] == [f"C{i}" for i in range(1, 7)]
    assert all(c.verdict == OPEN and c.evidence.startswith(NOT_MEASURED) for c in claims)
    broken = make_emorl_run(tmp_path / "broken", molma="wins")
    (broken / "seed_0" / "evidence" / "full_grid.json").write_text("{", encoding="utf-8")
    _write(broken / "seed_0" / "evidence" / "add_objective.json", {"added": "b"})
    got = by_id(compute_claims(broken))
    assert got["C4"].evidence.startswith(NOT_MEASURED) and got["C6"].verdict == OPEN


def test_claims_markdown_escapes_pipes() -> None:
    md = claims_markdown([Claim("C1", "x | y", "e", HOLDS)])
    assert md.splitlines()[2] == "| C1 | x \\| y | e | **holds** |"


def test_convergence_against_hand_counts(tmp_path: Path) -> None:
    metrics = tmp_path / "seed_3" / "experts" / "a" / "metrics.jsonl"
    _curve(metrics, SLOW)
    c = convergence("expert: a", metrics)
    # final = (0.5 + 0.7 + 0.6) / 3 = 0.6; target = 0.1 + 0.9 * 0.5 = 0.55 -> first at step 40
    assert c is not None and (c.seed, c.steps, c.prompts) == ("3", 40, 160)
    assert c.final == pytest.approx(0.6) and c.stability == pytest.approx(0.0816497, abs=1e-6)
    # no data_consumed logged: prompts = step × the run's batch size
    _jsonl(metrics, [{"step": 5 * k, "val/mean": v} for k, v in enumerate(SLOW)])
    (metrics.parent / "config.yaml").write_text("batch_size: 8\n", encoding="utf-8")
    c = convergence("expert: a", metrics)
    assert c is not None and (c.steps, c.prompts) == (20, 160)


@pytest.fixture
def v01_run(tmp_path: Path) -> Path:
    run = tmp_path / "study"
    shutil.copytree(FIXTURE, run)
    for p in run.rglob("*"):
        if p.is_file() and p.suffix in (".json", ".jsonl", ".yaml"):
            p.write_text(p.read_text(encoding="utf-8").replace("@ROOT@", str(tmp_path)),
                         encoding="utf-8")
    return run


def test_report_on_the_v0_1_fixture_has_the_statistics_sections(v01_run: Path) -> None:
    html_path, md_path = build_report(v01_run)
    md = md_path.read_text(encoding="utf-8")
    for title in ("Claims of the papers, measured", "Rewards with 95 % bootstrap confidence",
                  "Paired comparisons: EMORL (states) against each system",
                  "Learning curves: steps to 90% of the final reward", "Reward-hacking audit"):
        assert f"## {title}" in md, title
    lines = md.splitlines()
    for cid in ("C4", "C5", "C6"):
        row = next(line for line in lines if line.startswith(f"| {cid} |"))
        assert NOT_MEASURED in row and row.endswith(f"| {OPEN} |")
    # base's length rewards over the 4 units: 0.55, 0.70, 0.75, 0.575 -> mean 0.64375
    assert any(line.startswith("| base (untrained) | 0.6437 ± 0.0966 [") for line in lines)
    html = html_path.read_text(encoding="utf-8")
    assert "Reward-hacking audit" in html and "not measured in this run" in html
    claims_md = (v01_run / "report" / "claims.md").read_text(encoding="utf-8").splitlines()
    assert claims_md[0].startswith("| claim |") and len(claims_md) == 2 + 6
