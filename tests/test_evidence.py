"""The `evidence:` section of an EMORL study (C4 full grid, C6 adding an objective) on a tiny
study, its contract files, an independent evaluation of a grid point, a planted change of a kept
expert, and the evidence configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers_objectives import (
    PROMPTS,
    objective,
    save_tiny_base,
    tiny_study_overrides,
    write_prompts,
)

from moalign.algorithms.grid_search import point_key
from moalign.configs import shipped_config
from moalign.core.config import ConfigError, load_config
from moalign.core.io import read_jsonl
from moalign.emorl import evidence
from moalign.emorl.manifest import load_ensemble
from moalign.emorl.scst import SCSTConfig, train_scst
from moalign.emorl.study import (
    StudyConfig,
    add_objective_plan,
    load_study,
    run_emorl_study,
)
from moalign.evaluation.evaluate import make_weight_evaluator
from moalign.rewards.scorers import build_scorers
from moalign.runs.layout import RunDir, UnitDir
from moalign.runs.stages import start_run
from moalign.sampling import Sampling

FULL_GRID_KEYS = {"objectives", "step", "full", "hierarchical", "margin"}
ADD_KEYS = {"added", "kept", "before", "after", "from_start", "experts_unchanged",
            "new_expert_seconds", "margin"}
NAMES = ["vowel", "length", "words"]  # not sorted: weights lists follow the experts' order


def study_config(base: Path, prompts: Path, out: Path) -> StudyConfig:
    o = tiny_study_overrides(base, prompts, out)
    o.update(objectives=[objective(n) for n in NAMES], baselines=[],
             evidence={"full_grid": True, "add_objective": "words"})
    o["search"]["iterations"] = 2  # step 1/4: the full grid (91 points) differs from the search
    o["evaluation"] = {"seeds": [0], "runs": 1, "test_prompts": 2, "max_new_tokens": 4}
    return load_config(StudyConfig, None, o)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[StudyConfig, Path]:
    root = tmp_path_factory.mktemp("evidence")
    cfg = study_config(save_tiny_base(root / "base"), write_prompts(root / "p.jsonl"),
                       root / "run")
    return cfg, run_emorl_study(cfg)


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_full_grid_evidence_has_the_contract_and_sensible_values(study) -> None:
    _, run_dir = study
    sd = RunDir(run_dir).seed(0)
    grid = _json(sd.evidence.full_grid_json)
    assert set(grid) == FULL_GRID_KEYS and sorted(grid["objectives"]) == sorted(NAMES)
    summary = _json(sd.search.summary)
    best = summary["best_weights"]  # {objective: weight}
    assert grid["objectives"] == summary["experts"] != NAMES  # the search's (sorted) order
    assert dict(zip(grid["objectives"], grid["hierarchical"]["best_weights"], strict=True)) == \
        pytest.approx(best)
    assert grid["step"] == 0.25 and grid["margin"] == 0.02
    full, hier = grid["full"], grid["hierarchical"]
    assert set(full) == {"n_evals", "best_weights", "best_value", "seconds"}
    assert set(hier) == {"n_evals", "best_weights", "best_value", "best_value_on_full_grid",
                         "seconds"}
    # {0, 1/4, ..., 1}^3 without the origin has 91 distinct directions on the simplex (counted
    # by hand with fractions); the search saw fewer, and the grid contains all of them
    assert full["n_evals"] == 91
    records = read_jsonl(sd.evidence.full_grid.results)
    assert len({point_key(r["normalised"]) for r in records}) == 91
    hier_records = read_jsonl(sd.search.results)
    assert hier["n_evals"] == len(hier_records) < 91
    assert full["best_value"] == max(r["score"] for r in records)
    assert hier["best_value"] == max(r["score"] for r in hier_records)
    assert full["best_value"] >= hier["best_value"]
    at_best = [r["score"] for r in records
               if point_key(r["normalised"]) == point_key(hier["best_weights"])]
    assert at_best == [hier["best_value_on_full_grid"]] == [hier["best_value"]]
    assert sum(full["best_weights"]) == pytest.approx(1.0)  # greedy states: the simplex
    assert full["seconds"] >= hier["seconds"] > 0


def test_add_objective_evidence_has_the_contract_and_sensible_values(study) -> None:
    _, run_dir = study
    sd = RunDir(run_dir).seed(0)
    added = _json(sd.evidence.add_objective_json)
    assert set(added) == ADD_KEYS
    assert (added["added"], added["kept"], added["margin"]) == ("words", ["vowel", "length"],
                                                                0.02)
    assert set(added["before"]) == {"objectives", "best_weights", "best_value", "n_evals"}
    assert set(added["after"]) == {"objectives", "best_weights", "best_value", "n_evals",
                                   "seconds"}
    assert set(added["from_start"]) == {"objectives", "best_weights", "best_value"}
    for part, folder in (("before", sd.evidence.before), ("after", sd.evidence.after),
                         ("from_start", sd)):
        summary = _json(folder.search.summary)
        best = summary["best_weights"]
        assert added[part]["objectives"] == summary["experts"]
        labelled = zip(added[part]["objectives"], added[part]["best_weights"], strict=True)
        assert dict(labelled) == pytest.approx(best)
    assert len(added["before"]["best_weights"]) == 2 and len(added["after"]["best_weights"]) == 3
    assert added["experts_unchanged"] is True
    # the new expert was trained separately, with another seed, and its time is recorded
    unit = sd.evidence.added_expert("words")
    summary = _json(unit.summary)
    assert summary["seed"] == 0 + evidence.ADDED_SEED_OFFSET
    assert added["new_expert_seconds"] == summary["seconds"] > 0
    after_manifest = _json(sd.evidence.after.ensemble_json)
    assert sorted(after_manifest["experts"]) == sorted(NAMES)
    assert (sd.evidence.after.root / after_manifest["experts"]["words"]).resolve() == \
        unit.adapter.resolve()
    assert (sd.evidence.after.root / after_manifest["experts"]["length"]).resolve() == \
        sd.expert("length").adapter.resolve()
    from_start = _json(sd.search.summary)
    assert added["from_start"]["best_value"] == from_start["best_score"]
    assert added["after"]["best_value"] == _json(sd.evidence.after.search.summary)["best_score"]
    assert added["before"]["n_evals"] == len(read_jsonl(sd.evidence.before.search.results))
    assert (run_dir / "stages" / "evidence.json").is_file()


def test_a_resumed_study_keeps_the_evidence(study) -> None:
    cfg, run_dir = study
    sd = RunDir(run_dir).seed(0)
    files = [sd.evidence.full_grid_json, sd.evidence.add_objective_json]
    before = {p: p.stat().st_mtime_ns for p in files}
    (run_dir / "stages" / "evidence.json").unlink()  # the stage runs, its files are kept
    run_emorl_study(cfg)
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_a_full_grid_value_equals_an_independent_evaluation(study) -> None:
    """A point only the full grid decoded, re-evaluated by a fresh evaluator built here."""
    _, run_dir = study
    sd = RunDir(run_dir).seed(0)
    searched = {point_key(r["normalised"]) for r in read_jsonl(sd.search.results)}
    only_grid = [r for r in read_jsonl(sd.evidence.full_grid.results)
                 if point_key(r["normalised"]) not in searched]
    assert only_grid
    ensemble, _ = load_ensemble(sd.root, device="cpu")
    scorers = build_scorers([objective(n) for n in NAMES])
    evaluate = make_weight_evaluator(ensemble, PROMPTS[:2], scorers, "states",
                                     Sampling.greedy(4))
    for rec in (only_grid[0], only_grid[-1]):
        result = evaluate([tuple(rec["normalised"])])[0]
        assert result.score == pytest.approx(rec["score"], abs=1e-9)
        assert result.objectives == pytest.approx(rec["objectives"], abs=1e-9)


def test_a_changed_kept_expert_is_reported(study, tmp_path, monkeypatch) -> None:
    """Plant: the added expert's training touches a kept expert's adapter folder."""
    cfg, run_dir = study
    copy = shutil.copytree(run_dir, tmp_path / "run")
    sd = RunDir(copy).seed(0)
    sd.evidence.add_objective_json.unlink()
    shutil.rmtree(sd.evidence.after.search.root)  # its cache belongs to the unchanged experts
    real = evidence.train_or_resume

    def touching(*args, **kwargs):
        with (sd.expert("vowel").adapter / "adapter_config.json").open("a") as f:
            f.write("\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(evidence, "train_or_resume", touching)
    assert cfg.evidence is not None
    out = evidence.add_objective_evidence(add_objective_plan(cfg, cfg.evidence, "words", copy, 0))
    assert out["experts_unchanged"] is False
    assert _json(sd.evidence.add_objective_json)["experts_unchanged"] is False


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", ["counsel-evidence", "counsel-evidence-2h"])
def test_evidence_configs_load_validate_and_name_the_molma_run(name, tmp_path) -> None:
    cfg = load_study(shipped_config(name))
    assert isinstance(cfg, StudyConfig) and cfg.evidence is not None
    ev = cfg.evidence
    assert ev.full_grid and ev.add_objective == "fluency" and ev.retrain_added
    assert cfg.evaluation.test_prompts == 0 and cfg.evaluation.do_sample  # every test prompt
    assert cfg.policy.threads == (2 if name.endswith("2h") else 1)
    run = tmp_path / "runs" / name
    molma = evidence.molma_run_dir(ev, run)
    assert molma is not None and molma.resolve() == (tmp_path / "runs" / "molma-evidence")
    molma_cfg = load_study(shipped_config("molma-evidence"))
    assert Path(molma_cfg.out_dir).name == "molma-evidence" and molma_cfg.policy.threads == 1


@pytest.mark.parametrize(("overrides", "message"), [
    (["evidence.add_objective=nope"], "not one of the study's objectives"),
    (["evidence.margin=-0.1"], "margin must be a number >= 0"),
    (["search.method=grid"], "set search.method: hierarchical"),
    (["objectives=[reflection,fluency]"], "needs >= 3 objectives"),
    (["evidence.bogus=1"], r"evidence\.bogus"),
    (["policy.threads=-1"], "threads must be >= 0"),
])
def test_evidence_config_errors_are_actionable(overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_study(shipped_config("counsel-evidence"), overrides)


def test_a_config_without_evidence_is_unchanged() -> None:
    cfg = load_study(shipped_config("counsel-demo"))
    assert cfg.evidence is None and cfg.policy.threads == 0


def test_policy_threads_sets_torch_threads(tmp_path) -> None:
    before = torch.get_num_threads()
    cfg = load_study(shipped_config("counsel-demo"),
                     ["policy.threads=1", f"out_dir={tmp_path / 'run'}"])
    try:
        torch.set_num_threads(2)
        start_run(cfg, "emorl")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_every_validation_record_has_the_learning_curve_fields(tmp_path) -> None:
    """C2 / C3 curves: steps, prompts and seconds at every validation, the final one too."""
    out = tmp_path / "expert"
    cfg = SCSTConfig(policy=str(save_tiny_base(tmp_path / "base")), objectives=[
        objective("length")], data=str(write_prompts(tmp_path / "p.jsonl")), val_data=None,
        val_batch=2, batch_size=2, n_samples=2, max_new_tokens=4, max_steps=3, val_every=2,
        save_every=0, device="cpu", progress=False, out_dir=str(out))
    summary = train_scst(cfg)
    vals = [r for r in read_jsonl(UnitDir(out).metrics) if "val/mean" in r]
    assert [r["step"] for r in vals] == [0, 2, 3]  # step 3: the final, off-schedule validation
    assert [r["data_consumed"] for r in vals] == [0, 4, 6]
    assert all("val/length" in r for r in vals)
    seconds = [r["seconds"] for r in vals]
    assert seconds == sorted(seconds) and seconds[-1] == summary["seconds"]
