"""`moalign run` studies end to end on a tiny model (every stage, resume after a kill between
stages and inside one), the report's sections, human-evaluation export/import, shipped configs."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from helpers_objectives import objective, save_tiny_base, tiny_study_overrides, write_prompts
from typer.testing import CliRunner

from moalign.cli import app
from moalign.configs import shipped_config, shipped_config_names
from moalign.core.config import ConfigError, load_config, to_dict
from moalign.core.errors import DataError
from moalign.core.io import read_jsonl
from moalign.emorl import study as pipeline
from moalign.emorl.scst import SCSTConfig
from moalign.emorl.study import StudyConfig, load_study, run_emorl_study
from moalign.evaluation.human_eval import (
    cohen_kappa,
    export_sheet,
    fleiss_kappa,
    import_ratings,
    percent_agreement,
)
from moalign.evaluation.metrics import distinct2_authors, edit_rate_authors
from moalign.molma.study import MolmaStudyConfig
from moalign.runs import stages as study
from moalign.runs.report import build_report

ROOT = Path(__file__).resolve().parents[1]
EMORL_SECTIONS = ("overview", "rewards", "efficiency", "curves", "search", "pareto", "molma",
                  "human", "samples", "config")
SYSTEMS = ["base", "expert_length", "expert_vowel", "uniform", "dynaopt", "soup", "logits",
           "emorl"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("study_assets")
    return {"base": save_tiny_base(root / "base"), "prompts": write_prompts(root / "p.jsonl")}


def emorl_overrides(assets: dict[str, Path], out: Path) -> dict:
    return tiny_study_overrides(assets["base"], assets["prompts"], out)


def _mtimes(paths: list[Path]) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in paths}


def test_emorl_study_end_to_end_with_resume(assets, tmp_path, monkeypatch, capsys) -> None:
    run_dir = tmp_path / "study"
    cfg = load_config(StudyConfig, None, emorl_overrides(assets, run_dir))

    def killed(*args, **kwargs):
        raise RuntimeError("killed between stages")

    # 1. killed after the experts and ensembles: the search never starts
    with monkeypatch.context() as m:
        m.setattr(pipeline, "search_weights", killed)
        with pytest.raises(RuntimeError, match="killed"):
            run_emorl_study(cfg)
    stages = run_dir / "stages"
    assert {p.stem for p in stages.glob("*.json")} == {"experts", "ensembles"}
    early = _mtimes([*run_dir.glob("seed_0/experts/*/summary.json"),
                     *run_dir.glob("seed_0/experts/*/adapter/*"), stages / "experts.json"])
    assert len(early) >= 5

    # 2. killed inside the evaluation, after three (system, seed, run) units
    calls = {"n": 0}
    real_unit = study.evaluate_unit

    def flaky_unit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("killed during evaluation")
        return real_unit(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(study, "evaluate_unit", flaky_unit)
        with pytest.raises(RuntimeError, match="killed during"):
            run_emorl_study(cfg)
    assert {"search", "baselines"} <= {p.stem for p in stages.glob("*.json")}
    assert "search seed 0 iteration 1: " in capsys.readouterr().err  # progress per iteration
    units = sorted((run_dir / "eval" / "units").rglob("*.json"))
    assert len(units) == 3
    middle = _mtimes([run_dir / "seed_0" / "search" / "summary.json", *units])

    # 3. resumed: earlier work is skipped (files untouched) and the study completes
    out = run_emorl_study(cfg)
    assert out == run_dir
    assert _mtimes(list(early)) == early and _mtimes(list(middle)) == middle
    assert {p.stem for p in stages.glob("*.json")} == {
        "experts", "ensembles", "search", "baselines", "evaluate", "summary"}
    _check_emorl_artifacts(run_dir)
    assert load_study(run_dir / "config.yaml") == cfg  # the saved resolved config runs again


def _check_emorl_artifacts(run_dir: Path) -> None:
    table = json.loads((run_dir / "eval" / "table.json").read_text())
    assert [m["key"] for m in table["methods"]] == SYSTEMS
    for m in table["methods"]:
        assert m["n"] == 2 and set(m["rewards"]) == {"length", "vowel"}
        assert all(len(v) == 2 for v in m["rewards"].values())  # [mean, std]
        assert 0 <= m["diversity2"][0] <= 1 and 0 <= m["edit_rate"][0] <= 1
        assert (m["data"] is None) == (m["key"] == "base")
    cost = {m["key"]: m for m in table["methods"]}
    experts = [json.loads(p.read_text()) for p in run_dir.glob("seed_0/experts/*/summary.json")]
    search = json.loads((run_dir / "seed_0" / "search" / "summary.json").read_text())
    assert cost["emorl"]["seconds"][0] == pytest.approx(
        max(e["seconds"] for e in experts) + search["seconds"])
    assert cost["emorl"]["data"][0] == max(e["data_consumed"] for e in experts) + \
        search["n_evaluated_total"] * 2
    # the EMORL paper's count: every grid point of every iteration (3^K x I) x prompts
    assert cost["emorl"]["data_paper"][0] == max(e["data_consumed"] for e in experts) + 3**2 * 2
    assert cost["expert_length"]["data_paper"] == cost["expert_length"]["data"]
    units = [json.loads(p.read_text()) for p in (run_dir / "eval/units/emorl").glob("*.json")]
    for key, per_response in (("diversity2_authors", distinct2_authors),
                              ("edit_rate_authors", edit_rate_authors)):
        means = [sum(per_response(*pr) for pr in _pairs(u, key)) / u["n"] for u in units]
        assert cost["emorl"][key][0] == pytest.approx(sum(means) / len(means))
    top = json.loads((run_dir / "ensemble.json").read_text())
    assert top["best_weights"] and all(v.startswith("seed_0/") for v in top["experts"].values())
    gens = [json.loads(line) for line in (run_dir / "eval/generations/emorl.jsonl").open()]
    assert len(gens) == 4 and set(gens[0]["rewards"]) == {"length", "vowel"}
    assert {(g["seed"], g["run"]) for g in gens} == {(0, 0), (1, 0)}
    assert not (run_dir / "seed_1").exists()  # evaluation seed 1 reuses training seed 0
    _check_report(run_dir)


def _pairs(unit: dict, key: str) -> list[tuple[str, ...]]:
    """Arguments of the per-response metric `key` for every response of an evaluation unit."""
    if key.startswith("edit_rate"):
        return list(zip(unit["prompts"], unit["responses"], strict=True))
    return [(r,) for r in unit["responses"]]


def _check_report(run_dir: Path) -> None:
    html = (run_dir / "report" / "report.html").read_text()
    md = (run_dir / "report" / "report.md").read_text()
    for key in EMORL_SECTIONS:
        assert f'<section id="{key}">' in html
    for title in ("Rewards per method", "Diversity, edit rate", "Training curves",
                  "Hierarchical grid search", "Pareto front", "Sample generations",
                  "Resolved config"):
        assert title in md
    assert "data:image/png;base64," in html and 'src="figures' not in html  # self-contained
    assert html.count("Not available") == 2  # MOLMA and human evaluation: no artifacts here
    samples = md.split("## Sample generations")[1].split("\n## ")[0]
    assert samples.count("Prompt ") == 2 and samples.count("| EMORL") == 2  # a row per prompt
    for link in (line.split("](")[1].rstrip(")") for line in md.splitlines()
                 if line.startswith("![")):
        assert (run_dir / "report" / link).is_file()
    # imported human ratings appear as their own section
    (run_dir / "human_eval").mkdir()
    (run_dir / "human_eval" / "scores.json").write_text(json.dumps({
        "scores": {"emorl": {"length": 0.5, "vowel": 1.0}}, "n_raters": 2,
        "agreement": {"length": {"percent_agreement": 1.0, "cohen_kappa": None,
                                 "fleiss_kappa": None}}}))
    html_path, _ = build_report(run_dir)
    assert html_path.read_text().count("Not available") == 1


def test_molma_study_via_cli(assets, tmp_path) -> None:
    cfg = {
        "kind": "molma", "policy": {"name": str(assets["base"]), "device": "cpu"},
        "objectives": [objective("length"), objective("vowel")],
        "training": {"prompts": [str(assets["prompts"])], "proportions": [1.0],
                     "test_fraction": 0.25, "iterations": 1, "memory": 2, "minibatch": 2,
                     "max_new_tokens": 4, "progress": False},
        "baselines": ["so:length", "so_weighted"],
        "evaluation": {"seeds": [0], "runs": 1, "test_prompts": 2, "max_new_tokens": 4},
        "out_dir": str(tmp_path / "placeholder"),
    }
    path = tmp_path / "molma.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "molma"
    result = CliRunner().invoke(app, ["run", str(path), f"out_dir={run_dir}"])
    assert result.exit_code == 0, result.output
    wins = json.loads((run_dir / "compare" / "win_rates.json").read_text())
    assert wins["opponents"] == ["base (untrained)", "SO-length", "SO-weighted"]
    gens = {k: read_jsonl(run_dir / "eval" / "generations" / f"{k}.jsonl")
            for k in ("molma", "base", "so_length", "so_weighted")}
    for label, key in zip(wins["opponents"], ("base", "so_length", "so_weighted"), strict=True):
        for obj, w in wins["rates"][label].items():  # recounted from the per-prompt rewards
            pairs = [(a["rewards"][obj], b["rewards"][obj])
                     for a, b in zip(gens["molma"], gens[key], strict=True)]
            counts = (sum(a > b for a, b in pairs), sum(a == b for a, b in pairs),
                      sum(a < b for a, b in pairs))
            assert (w["win"], w["tie"], w["loss"]) == counts and sum(counts) == 2
            assert w["win_rate"] == pytest.approx((counts[0] + counts[1] / 2) / 2)
    assert (run_dir / "compare" / "reward_scatter.png").is_file()
    table = json.loads((run_dir / "eval" / "table.json").read_text())
    assert [m["key"] for m in table["methods"]] == ["base", "molma", "so_length", "so_weighted"]
    html = (run_dir / "report" / "report.html").read_text()
    assert '<section id="molma">' in html and "MOLMA vs SO-length" in html
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0 and "report.html" in result.output


# ----------------------------------------------------------------------------- human evaluation


def test_agreement_maths_on_a_hand_example() -> None:
    # two raters, five items: agree on items 0, 1, 3 (p_o = 3/5)
    a, b = [0, 1, 2, 2, 1], [0, 1, 1, 2, 2]
    # p_e = Σ_c p_a(c) p_b(c) = (1/5)(1/5) + (2/5)(2/5) + (2/5)(2/5) = 9/25
    assert cohen_kappa(a, b) == pytest.approx((3 / 5 - 9 / 25) / (1 - 9 / 25))
    items = [list(x) for x in zip(a, b, strict=True)]
    assert percent_agreement(items) == pytest.approx(0.6)
    # Fleiss: shares p = (2/10, 4/10, 4/10), P_e = 0.36, P̄ = 0.6 -> (0.6 - 0.36) / 0.64
    assert fleiss_kappa(items) == pytest.approx(0.375)
    # three raters on one item: 1 of 3 pairs agree, P_i = (2² + 1² - 3) / (3·2) = 1/3
    assert percent_agreement([[1, 1, 2]]) == pytest.approx(1 / 3)
    assert cohen_kappa([1, 1], [1, 1]) is None  # undefined: every rating in one category


def test_human_eval_round_trip(tmp_path) -> None:
    gens = {"emorl": [("p1", "you feel tired"), ("p2", "you are worried")],
            "uniform": [("p1", "tired you"), ("p2", "worried")],
            "base": [("p1", "I am a bot"), ("p2", "ok")]}
    sheet, key = export_sheet(gens, ["reflection", "fluency"], tmp_path / "sheet.csv", seed=3)
    rows = list(csv.DictReader(sheet.open()))
    assert len(rows) == 6 and {r["reflection"] for r in rows} == {""}
    assert all(r["response_id"].split("-")[0] == r["item"] for r in rows)
    text = sheet.read_text()
    assert "emorl" not in text and "uniform" not in text  # blinded
    ids = json.loads(key.read_text())["ids"]
    truth = {"emorl": (2, 2), "uniform": (1, 2), "base": (0, 1)}
    for rater, bump in (("r1", 0), ("r2", 1)):
        out = tmp_path / f"{rater}.csv"
        with out.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            for r in rows:
                refl, flu = truth[ids[r["response_id"]]]
                # rater 2 rates base's reflection 1 instead of 0 (one disagreement per item)
                if bump and ids[r["response_id"]] == "base":
                    refl = 1
                w.writerow({**r, "reflection": str(refl), "fluency": str(flu)})
    res = import_ratings([tmp_path / "r1.csv", tmp_path / "r2.csv"], key,
                         out_json=tmp_path / "scores.json")
    assert res.scores["emorl"] == {"reflection": 1.0, "fluency": 1.0}
    assert res.scores["uniform"] == {"reflection": 0.5, "fluency": 1.0}
    assert res.scores["base"] == {"reflection": 0.25, "fluency": 0.5}
    assert res.agreement["fluency"]["percent_agreement"] == 1.0
    assert res.agreement["reflection"]["percent_agreement"] == pytest.approx(4 / 6)
    assert res.n_raters == 2 and (tmp_path / "scores.json").is_file()


@pytest.mark.parametrize(("value", "message"), [("3", "out of range"), ("x", "not a rating"),
                                                 ("", "missing rating"), ("1.5", "out of range")])
def test_human_eval_rejects_bad_values(tmp_path, value, message) -> None:
    sheet, key = export_sheet({"a": [("p", "r")], "b": [("p", "s")]}, ["empathy"],
                              tmp_path / "s.csv")
    rows = list(csv.DictReader(sheet.open()))
    rows[0]["empathy"], rows[1]["empathy"] = value, "1"
    with (tmp_path / "bad.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(DataError, match=message):
        import_ratings([tmp_path / "bad.csv"], key)


def test_human_eval_cli(tmp_path) -> None:
    g1, g2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    g1.write_text(json.dumps({"prompt": "p", "response": "r1"}) + "\n")
    g2.write_text(json.dumps({"prompt": "p", "response": "r2"}) + "\n")
    out = tmp_path / "sheet.csv"
    r = CliRunner().invoke(app, ["human-eval", "export", "--out", str(out), "-g", f"A={g1}",
                                 "-g", f"B={g2}", "--objectives", "empathy"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    for row in rows:
        row["empathy"] = "2"
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    r = CliRunner().invoke(app, ["human-eval", "import", str(out), "--key",
                                 str(tmp_path / "sheet.key.json"),
                                 f"out={tmp_path / 'scores.json'}"])  # an override, not a sheet
    assert r.exit_code == 0, r.output
    assert "1.0000" in r.output and (tmp_path / "scores.json").is_file()


# ----------------------------------------------------------------------------- configs


SHIPPED = ["counsel-demo", "counsel-evidence", "counsel-evidence-2h", "emorl-paper",
           "molma-demo", "molma-evidence", "molma-paper"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load_and_validate(name) -> None:
    cfg = load_study(shipped_config(name))
    assert cfg.kind == ("molma" if name.startswith("molma") else "emorl")
    assert cfg.out_dir == f"runs/{name}"
    if name == "emorl-paper":
        assert (cfg.policy.name, cfg.training.batch_size) == ("models/t5-base", 16)
        assert (len(cfg.evaluation.seeds), cfg.evaluation.runs) == (5, 3)


@pytest.mark.parametrize(("overrides", "message"), [
    (["objectives=[reflection]"], ">= 2 objectives"),
    (["baselines=[uniform,nope]"], "unknown baseline"),
    (["evaluation.runs=0"], "runs must be >= 1"),
    (["evaluation.do_sample=false", "evaluation.runs=2"], "same output every run"),
    (["training.bogus=1"], r"training\.bogus.*valid keys"),
    (["training.policy=x"], r"training\.policy cannot be set here: .* policy\.name"),
    (["search.seed=3"], r"search\.seed cannot be set here"),
    (["training.n_samples=1"], "n_samples must be >= 2"),
    (["training_seeds=[0,0]"], "training_seeds must be distinct"),
    (["kind=other"], "unknown kind"),
    (["logits_space=raw"], "logits_space: raw makes the logits baseline equal the EMORL states"),
    (["evaluation.lexical_metrics=[nltk]"], "lexical_metrics must name one or both"),
    (["training.val_protocol=full"], "val_protocol"),
])
def test_study_config_errors_are_actionable(overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_study(shipped_config("counsel-demo"), overrides)


def _old_layout(cfg_dict: dict, training: dict, search: dict | None = None) -> dict:
    """A study config.yaml as the layout before the embedded trainer configs wrote it."""
    old = {k: v for k, v in cfg_dict.items() if k != "training_seeds"}
    old["training"] = {**training, "seeds": cfg_dict["training_seeds"]}
    if search is not None:
        old["search"] = search
    return old


def test_a_run_dir_of_the_previous_config_layout_resumes_quietly(assets, tmp_path,
                                                                 capsys) -> None:
    """config.yaml with `training.extra`, `training.seeds`, `search.extra` (the old sections):
    the same settings compare equal (no warning, config.yaml rewritten in today's shape); a
    changed setting only warns."""
    run_dir = tmp_path / "old"
    cfg = load_config(StudyConfig, None, emorl_overrides(assets, run_dir))
    training = {"n_samples": 2, "temperature": 1.0, "max_new_tokens": 4, "batch_size": 2,
                "micro_batch": 0, "lr": 0.05, "kl_coef": 0.0, "reward_transform": "identity",
                "val_every": 1, "val_batch": 2, "window": 5, "tol": 0.015, "max_steps": 2,
                "save_every": 1, "extra": {"progress": False}}
    search = {"method": "hierarchical", "iterations": 1, "level": "states", "n_prompts": 2,
              "max_new_tokens": 4, "chunk_size": 256, "extra": {}}
    old = _old_layout(to_dict(cfg), training, search)
    assert study.same_config(cfg, old)
    assert not study.same_config(cfg, {**old, "training": {**old["training"], "lr": 0.5}})
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(old))
    study.start_run(cfg, "emorl")
    assert "differs" not in capsys.readouterr().err
    assert load_study(run_dir / "config.yaml") == cfg
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**old, "baselines": ["uniform"]}))
    study.start_run(cfg, "emorl")
    assert "differs from this config" in capsys.readouterr().err


def test_molma_config_of_the_previous_layout_compares_equal(assets) -> None:
    p = str(assets["prompts"])
    cfg = load_config(MolmaStudyConfig, None, {
        "policy": {"name": str(assets["base"])}, "objectives": ["helpfulness", "safety"],
        "training": {"prompts": [p], "proportions": [1.0], "test_fraction": 0.25,
                     "iterations": 2, "delta": 0.3}, "training_seeds": [0]})
    training = {"iterations": 2, "memory": 64, "minibatch": 8, "max_new_tokens": 64,
                "lr": 1e-6, "beta": 0.01, "combiner": "aligned_mtl", "critic": "lora",
                "save_every": 10, "extra": {"delta": 0.3}}
    old = _old_layout(to_dict(cfg), training)
    old["data"] = {"prompts": [p], "proportions": [1.0], "test_fraction": 0.25}
    assert study.same_config(cfg, old)
    assert not study.same_config(cfg, {**old, "data": {**old["data"], "test_fraction": 0.1}})


def test_study_sections_are_the_trainer_configs(assets, tmp_path) -> None:
    """Every trainer default lives in the trainer's config; the study fills in what it owns."""
    cfg = load_config(StudyConfig, None, emorl_overrides(assets, tmp_path))
    unit = pipeline.scst_config(cfg, cfg.objectives, "uniform", 0, tmp_path / "u")
    assert unit == replace(cfg.training, policy=cfg.policy.name, objectives=cfg.objectives,
                           method="uniform", data=cfg.data.train, val_data=cfg.data.val,
                           seed=0, out_dir=str(tmp_path / "u"), device="cpu")
    assert unit.lora_r == SCSTConfig().lora_r and unit.progress is False
    search = pipeline.search_config(cfg, 0, tmp_path)
    assert (search.ensemble, search.iterations, search.out_dir) == (str(tmp_path / "seed_0"), 1,
                                                                   None)
    saved = to_dict(cfg)
    assert "policy" not in saved["training"] and "ensemble" not in saved["search"]
    molma = load_study(shipped_config("molma-paper"))
    assert molma.training.test_fraction == 0.03 and molma.training.weight_decay == 0.1
    assert molma.reward_models["safety"].train == "full"
    with pytest.raises(ConfigError, match=r"reward_models\.safety\.out cannot be set here"):
        load_study(shipped_config("molma-paper"), ["reward_models.safety.out=x"])


def test_shipped_configs_are_package_data_found_by_name_from_any_folder(tmp_path, monkeypatch
                                                                        ) -> None:
    assert shipped_config_names() == SHIPPED
    assert shipped_config("counsel-demo") == ROOT / "src/moalign/configs/counsel-demo.yaml"
    monkeypatch.chdir(tmp_path)
    for arg in ("counsel-demo", "counsel-demo.yaml", Path("molma-demo")):
        assert load_study(arg).name == Path(arg).name.removesuffix(".yaml")
    # a path still wins over the shipped name: a local counsel-demo.yaml is read as given
    local = shipped_config("counsel-demo").read_text().replace("name: counsel-demo", "name: mine")
    (tmp_path / "counsel-demo.yaml").write_text(local)
    assert load_study("counsel-demo.yaml").name == "mine"
    assert load_study("counsel-demo").name == "counsel-demo"
    assert load_study(tmp_path / "counsel-demo.yaml").name == "mine"
    r = CliRunner().invoke(app, ["run", "--help"], terminal_width=200)
    assert all(n in r.output for n in SHIPPED), r.output


@pytest.mark.parametrize("arg", ["counsel-dem", "configs/counsel-demo.yaml"])
def test_unknown_config_name_lists_the_shipped_ones(arg, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_study(arg)
    assert "\n" not in str(e.value) and arg in str(e.value)
    assert ", ".join(SHIPPED) in str(e.value)


def test_paper_config_follows_the_authors_protocol(monkeypatch) -> None:
    """emorl-paper: sampled validation of the whole split, EOS out of the loss, DynaOpt against
    the previous validation, the paper's search count, the authors' lexical metrics, mixture
    logits, and the EMORL row decoded by argmax while the other systems sample."""
    cfg = load_study(shipped_config("emorl-paper"))
    t = cfg.training
    assert (t.val_protocol, t.val_samples, t.val_batch, t.temperature) == \
        ("sampled_split", 3, 8, 1.0)
    assert (t.count_eos, t.dynaopt_window, cfg.search.n_prompts, cfg.search.simplex) == \
        (False, 1, 32, False)
    assert cfg.evaluation.lexical_metrics == ["authors"] and cfg.logits_space == "probs"
    seen = {}

    def spy(ensemble, weights, level, sampling, system=None, **kw):
        seen[level] = (sampling, kw.get("logits_space"))
        return lambda prompts, seed=0: []

    monkeypatch.setattr(pipeline, "ensemble_generate_fn", spy)
    systems = {s.key: s for s in pipeline.emorl_systems(cfg)}
    for key in ("emorl", "logits", "soup"):
        systems[key].make({"ensemble": None, "weights": None})
    assert not seen["states"][0].do_sample  # argmax (EMORL Eq. 2)
    assert seen["params"][0].do_sample and seen["params"][0].temperature == 1.0
    assert seen["logits"] == (seen["params"][0], "probs")
    mcfg = load_study(shipped_config("molma-paper"))
    assert (mcfg.training.finetune, mcfg.training.lr, mcfg.training.apa_lambda) == \
        ("full", 1e-6, 0.95)
