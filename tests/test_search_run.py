"""Weight search on tiny ensembles: batched evaluation, artifacts, resume, adding an objective,
and `moalign generate` with user-chosen weights (EMORL §4.1-4.2, Figure 4, §6 scalability)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from moalign.cli import app
from moalign.core.config import ConfigError
from moalign.core.io import read_jsonl
from moalign.emorl import decoding
from moalign.emorl.ensemble import Ensemble
from moalign.emorl.manifest import EnsembleManifest
from moalign.emorl.weight_search import SearchConfig, run_search
from moalign.evaluation.evaluate import (
    ensemble_generate_fn,
    make_weight_evaluator,
    policy_generate_fn,
    score_responses,
)
from moalign.models import attach_lora, load_policy, save_adapter, tiny_causal_lm
from moalign.sampling import Sampling

PROMPTS = ["I feel stressed about work.", "My sister and I keep arguing.",
           "I can't sleep at night."]
NEW_TOKENS = 6
GREEDY = Sampling.greedy(NEW_TOKENS)
SAMPLED = Sampling(NEW_TOKENS, do_sample=True)


# ----------------------------------------------------------------------------- objectives


def len_score(prompts: list[str], responses: list[str]) -> list[float]:
    """Longer responses score higher (saturating at 100 characters)."""
    return [min(len(r), 100) / 100.0 for r in responses]


def vowel_score(prompts: list[str], responses: list[str]) -> list[float]:
    """Fraction of vowels among the response's letters."""
    out = []
    for r in responses:
        letters = [c for c in r.lower() if c.isalpha()]
        out.append(sum(c in "aeiou" for c in letters) / len(letters) if letters else 0.0)
    return out


def space_score(prompts: list[str], responses: list[str]) -> list[float]:
    """Fraction of characters that are spaces."""
    return [r.count(" ") / len(r) if r else 0.0 for r in responses]


FUNCS = {"x": len_score, "y": vowel_score, "z": space_score}


def objectives(names: str) -> dict[str, dict]:
    return {n: {"kind": "python", "function": FUNCS[n]} for n in names}


def scorers(names: str) -> list:
    from moalign.rewards.scorers import build_scorer

    return [build_scorer({"kind": "python", "function": FUNCS[n], "name": n}) for n in names]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A saved tiny base model and three random LoRA experts x, y, z (random lora_B, seeded)."""
    root = tmp_path_factory.mktemp("assets")
    base = root / "base"
    policy = tiny_causal_lm(0)
    policy.model.save_pretrained(base)
    policy.tokenizer.save_pretrained(base)
    out = {"base": base}
    for i, name in enumerate("xyz"):
        p = load_policy(str(base), device="cpu")
        torch.manual_seed(100 + i)
        attach_lora(p, name)
        gen = torch.Generator().manual_seed(1000 + i)
        with torch.no_grad():
            for pname, param in p.model.named_parameters():
                if "lora_B" in pname:
                    param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
        out[name] = save_adapter(p, name, root / "trained" / name / "adapter")
    return out


@pytest.fixture(scope="module")
def ensemble_xy(assets: dict[str, Path]) -> Ensemble:
    return Ensemble.from_adapters(load_policy(str(assets["base"]), device="cpu"),
                                  {"x": assets["x"], "y": assets["y"]})


def make_run(tmp: Path, assets: dict[str, Path], names: str) -> Path:
    run = tmp / "run"
    args = ["ensemble", "create", str(run), "--base", str(assets["base"])]
    for n in names:
        args += ["--expert", f"{n}={assets[n].parent}"]  # an SCST-style out_dir works too
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return run


def search_cfg(run: Path, names: str, **kw) -> SearchConfig:
    base = dict(ensemble=str(run), objectives=objectives(names), data=PROMPTS, iterations=2,
                max_new_tokens=NEW_TOKENS, device="cpu", plots=False)
    return SearchConfig(**{**base, **kw})


def without_n_new(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "n_new"} for h in history]


def file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def count_generate(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows per `decoding.generate` call."""
    calls: list[int] = []
    real = decoding.generate

    def counted(ensemble, prompts, weights, *args, **kwargs):
        calls.append(len(prompts))
        return real(ensemble, prompts, weights, *args, **kwargs)

    monkeypatch.setattr(decoding, "generate", counted)
    return calls


# ----------------------------------------------------------------------------- evaluator


def test_weight_evaluator_batches_points_and_matches_separate(ensemble_xy, count_generate):
    ens = ensemble_xy
    evaluate = make_weight_evaluator(ens, PROMPTS, scorers("xy"), sampling=GREEDY)
    points = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.2, 0.8)]
    batched = evaluate(points)
    assert count_generate == [len(points) * len(PROMPTS)]  # ONE generation for all points
    separate = [evaluate([p])[0] for p in points]
    for x, y in zip(batched, separate, strict=True):
        assert x.point == y.point
        assert x.objectives == pytest.approx(y.objectives, abs=1e-6)
        assert x.score == pytest.approx(y.score, abs=1e-6)
        assert x.extra["diversity2"] == pytest.approx(y.extra["diversity2"])
        assert x.extra["edit_rate"] == pytest.approx(y.extra["edit_rate"])
        assert x.score == pytest.approx(sum(x.objectives.values()) / 2)
    assert len({tuple(r.objectives.values()) for r in batched}) > 1  # weights matter
    count_generate.clear()
    chunked = make_weight_evaluator(ens, PROMPTS, scorers("xy"), sampling=GREEDY,
                                    chunk_size=5)(points)
    assert count_generate == [5, 5, 2]
    for x, y in zip(chunked, batched, strict=True):
        assert x.objectives == pytest.approx(y.objectives)


def test_zero_point_is_the_base_policy_at_params_level(ensemble_xy) -> None:
    evaluate = make_weight_evaluator(ensemble_xy, PROMPTS, scorers("xy"), level="params",
                                     sampling=GREEDY)
    zero, one = evaluate([(0.0, 0.0), (1.0, 0.0)])  # no simplex: the search visits (0, 0)
    base = policy_generate_fn(ensemble_xy.policy, GREEDY)(PROMPTS)
    assert zero.objectives == pytest.approx(score_responses(PROMPTS, base, scorers("xy"))[
        "objectives"])
    assert zero.extra["sample"] == base[0][:200] and math.isfinite(one.score)


def test_score_responses_of_seeded_samples(ensemble_xy) -> None:
    s = score_responses(PROMPTS, ["you feel tired", "", "a b a b"], scorers("xy"))
    assert set(s["objectives"]) == {"x", "y"} and s["n"] == 3
    assert len(s["per_example"]["x"]) == 3 and len(s["per_example"]["diversity2"]) == 3
    generate = ensemble_generate_fn(ensemble_xy, "x=0.3,y=0.7", sampling=SAMPLED)
    responses = generate(PROMPTS, 1)
    assert generate(PROMPTS, 1) == responses and len(responses) == len(PROMPTS)
    s = score_responses(PROMPTS, responses, scorers("xy"))
    for key in ("score", "diversity2", "edit_rate"):
        assert math.isfinite(s[key])


# ----------------------------------------------------------------------------- search


def test_run_search_writes_artifacts_and_resumes(assets, tmp_path, count_generate) -> None:
    run = make_run(tmp_path, assets, "xyz")
    cfg = search_cfg(run, "xyz", plots=True)
    result = run_search(cfg)
    out = run / "search"
    # K = 3, 2 iterations, simplex: 27 - 1 (zero) - 1 ((1,1,1) ~ (.5,.5,.5)) then 19 new corners
    assert result.n_evaluations == len(read_jsonl(out / "results.jsonl"))
    assert len(count_generate) == 2  # one batched generation per iteration
    for name in ("config.yaml", "fingerprint.json", "best_weights.json", "summary.json",
                 "history.json", "pareto.json", "search_iter_01.png", "search_iter_02.png",
                 "search_overview.png", "pareto.png"):
        assert (out / name).is_file(), name
    best = json.loads((out / "best_weights.json").read_text())
    assert list(best) == ["x", "y", "z"] and sum(best.values()) == pytest.approx(1.0)
    assert EnsembleManifest.load(run).best_weights == best
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_score"] == pytest.approx(result.best_score)
    # search cost, both conventions: decoded points x prompts; the paper's 3^K x I x prompts
    assert summary["n_prompts"] == len(PROMPTS)
    assert summary["data_moalign"] == len(read_jsonl(out / "results.jsonl")) * len(PROMPTS)
    assert summary["data_paper"] == 3**3 * 2 * len(PROMPTS)
    assert set(summary["cost_conventions"]) == {"moalign", "paper"}
    assert len(json.loads((out / "history.json").read_text())["history"]) == 2
    front = json.loads((out / "pareto.json").read_text())["front"]
    assert front and all(set(f["weights"]) == {"x", "y", "z"} for f in front)
    values = {tuple(r.point): [r.objectives[n] for n in "xyz"] for r in result.evaluated}

    def dominated(v: list[float]) -> bool:  # by brute force over every evaluated point
        return any(all(a >= b for a, b in zip(w, v, strict=True)) and w != v
                   for w in values.values())

    want = {p for p, v in values.items() if not dominated(v)}
    assert {tuple(f["weights"][n] for n in "xyz") for f in front} == want
    assert len(want) < len(values)  # the front is a real selection here
    count_generate.clear()
    again = run_search(dataclasses.replace(cfg, plots=False))  # resume: all cached
    assert again.n_evaluations == 0 and count_generate == []
    assert again.best_point == result.best_point
    assert without_n_new(again.history) == without_n_new(result.history)
    grid = run_search(search_cfg(run, "xyz", method="grid", grid_step=0.5))
    assert grid.n_evaluations == 0  # the 3^3 grid was already evaluated by iteration 1


def test_resume_after_interruption_does_not_reevaluate(assets, tmp_path, monkeypatch) -> None:
    run = make_run(tmp_path, assets, "xy")
    reference = run_search(search_cfg(run, "xy", out_dir=str(tmp_path / "ref")))
    cfg = search_cfg(run, "xy", points_per_call=3, save_best=False)
    real, seen = decoding.generate, []

    def interrupted(ensemble, prompts, weights, *args, **kwargs):
        if len(seen) == 2:
            raise KeyboardInterrupt  # a kill in the middle of the first iteration
        seen.append(torch.as_tensor(weights)[:: len(PROMPTS)].tolist())
        return real(ensemble, prompts, weights, *args, **kwargs)

    monkeypatch.setattr(decoding, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(cfg)
    done = read_jsonl(run / "search" / "results.jsonl")
    assert len(done) == sum(len(call) for call in seen) > 0  # appended before the kill
    seen.clear()
    monkeypatch.setattr(decoding, "generate", lambda *a, **k: (seen.append(
        torch.as_tensor(a[2])[:: len(PROMPTS)].tolist()), real(*a, **k))[1])
    resumed = run_search(cfg)
    again = {tuple(round(x, 9) for x in p) for call in seen for p in call}
    first = {tuple(round(x, 9) for x in r["normalised"]) for r in done}
    assert not again & first  # nothing evaluated twice
    assert resumed.n_evaluations + len(done) == reference.n_evaluations
    assert resumed.best_point == reference.best_point
    assert resumed.best_score == pytest.approx(reference.best_score)


def test_add_objective_keeps_experts_and_searches_k3(assets, tmp_path) -> None:
    run = make_run(tmp_path, assets, "xy")
    first = run_search(search_cfg(run, "xy"))
    assert len(first.best_point) == 2
    before = {n: file_hashes(run / "experts" / n) for n in "xy"}
    res = CliRunner().invoke(app, ["ensemble", "add", str(run), "--objective", "z",
                                   "--adapter", str(assets["z"])])
    assert res.exit_code == 0, res.output
    manifest = EnsembleManifest.load(run)
    assert manifest.objectives == ["x", "y", "z"] and manifest.best_weights["z"] == 0.0
    with pytest.raises(ConfigError, match="fresh=true"):
        run_search(search_cfg(run, "xyz"))  # the old K=2 results are not mixed in
    (run / "search.yaml").write_text(
        "objectives:\n" + "".join(f"  {n}: {{kind: python, function: 'test_search_run:"
                                  f"{FUNCS[n].__name__}'}}\n" for n in "xyz")
        + f"data: {json.dumps(PROMPTS)}\niterations: 2\nmax_new_tokens: {NEW_TOKENS}\n"
        + "plots: false\n")
    res = CliRunner().invoke(app, ["search", "--ensemble", str(run), "--config",
                                   str(run / "search.yaml"), "fresh=true", "device=cpu"])
    assert res.exit_code == 0, res.output
    assert "best score" in res.output
    history = json.loads((run / "search" / "history.json").read_text())["history"]
    assert all(len(p) == 3 for p in history[0]["points"]) and len(history[0]["points"]) == 27
    assert set(EnsembleManifest.load(run).best_weights) == {"x", "y", "z"}
    assert {n: file_hashes(run / "experts" / n) for n in "xy"} == before
    for n in "xy":  # and they still equal the trained adapters they were copied from
        assert file_hashes(run / "experts" / n / "adapter") == file_hashes(assets[n])


# ----------------------------------------------------------------------------- generate


def test_generate_cli_with_user_weights(assets, ensemble_xy, tmp_path) -> None:
    run = make_run(tmp_path, assets, "xy")
    runner = CliRunner()
    args = ["generate", "--ensemble", str(run), "--max-new-tokens", str(NEW_TOKENS), "--json",
            "--device", "cpu", *PROMPTS[:2]]
    res = runner.invoke(app, [*args, "--weights", "x=0.8,y=0.2"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["prompt"] for r in rows] == PROMPTS[:2]
    assert rows[0]["weights"] == {"x": 0.8, "y": 0.2} and rows[0]["level"] == "states"
    direct = ensemble_generate_fn(ensemble_xy, "x=0.8,y=0.2", sampling=GREEDY)(PROMPTS[:2])
    assert [r["response"] for r in rows] == direct
    res = runner.invoke(app, args)  # no weights anywhere: uniform, with a note
    assert res.exit_code == 0 and "uniform" in res.stderr


@pytest.mark.parametrize(("weights", "message"), [
    ("x=0.5,zzz=0.5", "known: ['x', 'y']"),
    ("x=-0.5,y=1", "negative"),
    ("x=nan,y=1", "NaN"),
    ("x=0,y=0", "all zero"),
])
def test_generate_cli_rejects_bad_weights(assets, tmp_path, weights, message, capsys,
                                          monkeypatch) -> None:
    run = make_run(tmp_path, assets, "xy")
    args = ["generate", "--ensemble", str(run), "--weights", weights, "hello"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0 and message in str(res.exception)
    from moalign.cli import main  # the real entry point prints one line, exit code 2

    monkeypatch.setattr(sys, "argv", ["moalign", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_ensemble_create_from_a_config_file(assets, tmp_path) -> None:
    run = tmp_path / "run"
    cfg = tmp_path / "ensemble.yaml"
    cfg.write_text(f"base: {assets['base']}\nexperts: {{x: {assets['x']}}}\ncopy: false\n"
                   "system: be kind\n")
    res = CliRunner().invoke(app, ["ensemble", "create", str(run), "--config", str(cfg),
                                   f"experts.y={assets['y'].parent}", "system=be brief"])
    assert res.exit_code == 0, res.output
    manifest = EnsembleManifest.load(run)
    assert manifest.objectives == ["x", "y"] and manifest.system == "be brief"
    assert manifest.experts["x"] == str(assets["x"].resolve())  # linked, not copied
    res = CliRunner().invoke(app, ["ensemble", "create", str(run), "--config", str(cfg)])
    assert res.exit_code != 0 and "--force" in str(res.exception)


def test_generate_and_ensemble_errors(assets, tmp_path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["generate", "--ensemble", str(tmp_path / "nope"), "hi"])
    assert res.exit_code != 0 and "ensemble.json" in str(res.exception)
    run = make_run(tmp_path, assets, "xy")
    res = runner.invoke(app, ["ensemble", "add", str(run), "--objective", "x", "--adapter",
                              str(assets["z"])])
    assert res.exit_code != 0 and "already has an expert" in str(res.exception)
    res = runner.invoke(app, ["ensemble", "add", str(run), "--objective", "w", "--adapter",
                              str(tmp_path)])
    assert res.exit_code != 0 and "adapter_config.json" in str(res.exception)
    res = runner.invoke(app, ["ensemble", "show", str(run)])
    assert res.exit_code == 0 and "x:" in res.output and "y:" in res.output
