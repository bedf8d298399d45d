"""The run-directory layout (`moalign.runs.layout`) names exactly the files runs have on disk.

The v0.1 fixture (`tests/fixtures/v0_1_run`, written before the layout type existed) is the
reference: every file of it must be a path the layout names, and every path the layout names
for that study must exist in it. Paths the fixture lacks (MOLMA, report, figures) are pinned to
their literal names.
"""

from __future__ import annotations

import json
from pathlib import Path

from moalign.runs.layout import RunDir, SearchDir, SeedDir, UnitDir

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "v0_1_run"
OBJECTIVES = ("length", "vowel")
BASELINES = ("uniform", "dynaopt")
SYSTEMS = ("base", "expert_length", "expert_vowel", "uniform", "dynaopt", "soup", "logits",
           "emorl")
STAGES = ("experts", "ensembles", "search", "baselines", "evaluate", "summary")


def _unit_paths(unit: UnitDir) -> list[Path]:
    return [unit.config, unit.metrics, unit.summary, unit.adapter]


def _study_paths(run: RunDir) -> list[Path]:
    """Every path the layout names for the fixture's study (seed 0 trains, seeds 0, 1 evaluate)."""
    sd = run.seed(0)
    paths = [run.config_yaml, run.study_json, run.ensemble_json, run.table, sd.ensemble_json]
    paths += [run.stage_marker(s) for s in STAGES]
    for n in OBJECTIVES:
        paths += _unit_paths(sd.expert(n))
    paths.append(sd.expert("length").legacy_checkpoint)  # the fixture keeps one 0.1 checkpoint
    for m in BASELINES:
        paths += _unit_paths(sd.baseline(m))
    s = sd.search
    paths += [s.config, s.results, s.fingerprint, s.summary, s.best_weights, s.history, s.pareto]
    for system in SYSTEMS:
        paths += [run.unit(system, seed, 0) for seed in (0, 1)] + [run.generations(system)]
    return paths


def _fixture_files(root: Path) -> set[Path]:
    """Files of the fixture; an adapter/ or checkpoint/ folder counts as one entry."""
    out = set()
    for p in root.rglob("*"):
        folder = next((a for a in p.relative_to(root).parents
                       if a.name in ("adapter", "checkpoint")), None)
        if folder is not None:
            out.add(root / folder)
        elif p.is_file():
            out.add(p)
    return out


def test_layout_names_every_file_of_a_v0_1_run() -> None:
    run = RunDir(FIXTURE)
    named = set(_study_paths(run))
    assert named == _fixture_files(FIXTURE)
    assert [s.root for s in run.seed_dirs()] == [FIXTURE / "seed_0"]
    assert run.unit_files("emorl") == [run.unit("emorl", 0, 0), run.unit("emorl", 1, 0)]
    assert run.generation_files() == sorted(run.generations(s) for s in SYSTEMS)
    assert set(run.stage_markers()) == {run.stage_marker(s) for s in STAGES}


def test_manifest_entries_match_the_v0_1_manifests() -> None:
    run = RunDir(FIXTURE)
    seed_manifest = json.loads(run.seed(0).ensemble_json.read_text(encoding="utf-8"))
    top_manifest = json.loads(run.ensemble_json.read_text(encoding="utf-8"))
    assert seed_manifest["experts"] == {n: run.seed(0).expert_entry(n) for n in OBJECTIVES}
    assert top_manifest["experts"] == {n: run.published_entry(0, run.seed(0).expert_entry(n))
                                       for n in OBJECTIVES}


def test_paths_outside_the_fixture_keep_their_names() -> None:
    run, r = RunDir("R"), Path("R")  # a str root is accepted
    assert run.seed(1).policy("so_safety").adapter == r / "seed_1/train/so_safety/adapter"
    assert run.reward_model("safety") == r / "reward_models/safety"
    assert run.reward_model_metrics("safety") == r / "reward_models/safety/metrics.json"
    assert (run.win_rates, run.reward_scatter) == (r / "compare/win_rates.json",
                                                   r / "compare/reward_scatter.png")
    assert run.human_scores == r / "human_eval/scores.json"
    assert (run.report_html, run.report_md, run.figures_dir) == (
        r / "report/report.html", r / "report/report.md", r / "report/figures")
    assert run.search.root == r / "search" and run.stages_dir == r / "stages"
    unit = UnitDir(Path("U"))
    assert (unit.value_adapter, unit.value_head, unit.seeds_summary, unit.seed(2).summary) == (
        Path("U/value_adapter"), Path("U/value_head.safetensors"), Path("U/seeds_summary.json"),
        Path("U/seed_2/summary.json"))
    search = SearchDir(Path("S"))
    assert (search.iteration_png(3), search.overview_png, search.pareto_png, search.legacy_best) \
        == (Path("S/search_iter_03.png"), Path("S/search_overview.png"), Path("S/pareto.png"),
            Path("S/best.json"))
    assert SeedDir(Path("E")).expert("x").adapter == Path("E/experts/x/adapter")
