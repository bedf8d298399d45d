"""Artifacts other tools can use, and the command-line papercuts of issue 14: adapters that plain
PEFT loads, `ensemble export` / `push`, `ensemble create --expert a=X,b=Y`, `generate` with
transformers' options, `train-rm` leaving the prepared model alone, `report` on one training run,
`--version`, MOLMA's first/last reward windows, optional loggers."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch
from helpers_objectives import save_tiny_base
from peft import PeftModel
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner, Result

from moalign import __version__
from moalign.cli import app
from moalign.core.config import ConfigError
from moalign.emorl.ensemble import Ensemble
from moalign.emorl.manifest import EnsembleManifest, load_ensemble
from moalign.evaluation.evaluate import ensemble_generate_fn
from moalign.models import (
    PUBLIC_IDS,
    SMOLLM2,
    attach_lora,
    load_adapter,
    load_policy,
    public_model_id,
    resolve_model,
    save_adapter,
    tiny_t5,
)
from moalign.sampling import Sampling

PROMPTS = ["I feel stressed about work.", "My sister and I keep arguing."]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine their OpenMP
    barriers wait on descheduled threads (many times slower); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A saved tiny base and two LoRA experts x, y with random B matrices."""
    root = tmp_path_factory.mktemp("artifacts")
    out = {"base": save_tiny_base(root / "base")}
    for i, name in enumerate("xy"):
        policy = load_policy(str(out["base"]), device="cpu")
        attach_lora(policy, name)
        gen = torch.Generator().manual_seed(10 + i)
        with torch.no_grad():
            for pname, param in policy.model.named_parameters():
                if "lora_B" in pname:
                    param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
        out[name] = save_adapter(policy, name, root / "trained" / name / "adapter")
    return out


def _run(args: list[object]) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


# ----------------------------------------------------------------------------- adapters


def test_saved_adapter_loads_with_plain_peft(assets):
    meta = json.loads((assets["x"] / "adapter_config.json").read_text())
    assert meta["task_type"] == "CAUSAL_LM"
    assert meta["base_model_name_or_path"] == str(assets["base"].resolve())
    ids = torch.tensor([[1, 2, 3, 4]])
    ours = load_adapter(load_policy(str(assets["base"]), device="cpu"), assets["x"], "x")
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(assets["base"]),
                                      str(assets["x"]))  # the folder as saved, nothing rewritten
    assert type(plain).__name__ == "PeftModelForCausalLM"
    with torch.no_grad():
        assert torch.allclose(plain(input_ids=ids).logits, ours.model(input_ids=ids).logits)
        base = AutoModelForCausalLM.from_pretrained(assets["base"])(input_ids=ids).logits
    assert not torch.allclose(plain(input_ids=ids).logits, base)  # the adapter did something


def test_bundled_base_is_recorded_by_its_public_id(tmp_path):
    assert public_model_id(SMOLLM2) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_model(PUBLIC_IDS[SMOLLM2]) == resolve_model(SMOLLM2)  # loads offline
    policy = tiny_t5()
    policy.name = SMOLLM2  # as if trained on the bundled model
    attach_lora(policy, "e")
    meta = json.loads((save_adapter(policy, "e", tmp_path / "a") / "adapter_config.json")
                      .read_text())
    assert meta["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["task_type"] == "SEQ_2_SEQ_LM"


# ----------------------------------------------------------------------------- ensembles


def test_create_takes_comma_separated_experts_and_cleans_up_on_failure(assets, tmp_path):
    run = tmp_path / "ens"
    res = _run(["ensemble", "create", run, "--base", assets["base"], "--expert",
                f"x={assets['x']},y={assets['y'].parent}"])
    assert res.exit_code == 0, res.output
    assert EnsembleManifest.load(run).objectives == ["x", "y"]
    bad = tmp_path / "bad"
    res = _run(["ensemble", "create", bad, "--base", assets["base"], "--expert",
                f"x={assets['x']},y={tmp_path / 'nowhere'}"])
    assert res.exit_code != 0 and "adapter_config.json" in str(res.exception)
    assert not bad.exists()


def test_export_is_self_describing_and_loads(assets, tmp_path):
    run = tmp_path / "ens"
    assert _run(["ensemble", "create", run, "--base", assets["base"], "--expert",
                 f"x={assets['x']}", "--expert", f"y={assets['y']}", "--system",
                 "be kind"]).exit_code == 0
    manifest = EnsembleManifest.load(run)
    manifest.best_weights = {"x": 0.75, "y": 0.25}
    manifest.save(run)
    res = _run(["ensemble", "export", run])
    assert res.exit_code == 0, res.output
    out = run / "export"
    exported = EnsembleManifest.load(out)
    assert exported.base == str(assets["base"].resolve())
    assert exported.best_weights == {"x": 0.75, "y": 0.25} and exported.system == "be kind"
    assert exported.experts == {"x": "experts/x/adapter", "y": "experts/y/adapter"}
    card = (out / "README.md").read_text()
    assert card.startswith("---\nbase_model: ") and "library_name: peft" in card
    assert "x=0.75,y=0.25" in card and "moalign serve" in card
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "ensemble.json", "experts"]
    ens, _ = load_ensemble(out, device="cpu")
    original, _ = load_ensemble(run, device="cpu")
    greedy = Sampling.greedy(5)
    assert ensemble_generate_fn(ens, "x=0.75,y=0.25", sampling=greedy)(PROMPTS) == \
        ensemble_generate_fn(original, "x=0.75,y=0.25", sampling=greedy)(PROMPTS)
    assert _run(["ensemble", "export", run]).exit_code != 0  # exists: needs --force
    assert _run(["ensemble", "export", run, "--force"]).exit_code == 0


def test_push_uploads_the_export_and_fails_in_one_line_offline(assets, tmp_path, monkeypatch,
                                                               capsys):
    import huggingface_hub

    run = tmp_path / "ens"
    assert _run(["ensemble", "create", run, "--base", assets["base"], "--expert",
                 f"x={assets['x']}"]).exit_code == 0
    calls = []
    monkeypatch.setattr(huggingface_hub, "create_repo",
                        lambda repo_id, **kw: calls.append(("create", repo_id, kw)))
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda **kw: calls.append(
        ("upload", kw["repo_id"], sorted(p.name for p in Path(kw["folder_path"]).iterdir()))))
    res = _run(["ensemble", "push", run, "me/counsel"])
    assert res.exit_code == 0, res.output
    assert calls[0][:2] == ("create", "me/counsel") and calls[0][2]["exist_ok"]
    assert calls[1] == ("upload", "me/counsel", ["README.md", "ensemble.json", "experts"])
    monkeypatch.undo()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(sys, "argv", ["moalign", "ensemble", "push", str(run), "me/counsel"])
    from moalign.cli import main

    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1
    assert "cannot push to the Hub repo 'me/counsel'" in err and "export is ready" in err


def test_generate_cli_takes_transformers_options(assets, tmp_path, monkeypatch):
    import moalign.emorl.manifest as manifest_module

    run = tmp_path / "ens"
    assert _run(["ensemble", "create", run, "--base", assets["base"], "--expert",
                 f"x={assets['x']}"]).exit_code == 0
    loaded = load_ensemble(run, device="cpu")
    monkeypatch.setattr(manifest_module, "load_ensemble", lambda *a, **k: loaded)  # load once
    greedy = ensemble_generate_fn(loaded[0], "x=1", sampling=Sampling.greedy(6))(PROMPTS)
    base = ["generate", "--ensemble", run, "--max-new-tokens", "6", "--json", *PROMPTS]
    two = _run([*base, "--sample", "-n", "2", "--seed", "1", "--top-k", "50"])
    rows = [json.loads(line) for line in two.stdout.splitlines()]
    assert [(r["prompt"], r["index"]) for r in rows] == [(PROMPTS[0], 0), (PROMPTS[0], 1),
                                                        (PROMPTS[1], 0), (PROMPTS[1], 1)]
    stop = greedy[0][3:6]
    cut = _run([*base, "--stop", stop])
    first = json.loads(cut.stdout.splitlines()[0])["response"]
    assert stop not in first and greedy[0].startswith(first)
    (tmp_path / "gc").mkdir()  # sampling with top-k 1 at a high temperature is still greedy
    Sampling(6, do_sample=True, top_k=1, temperature=2.0).to_generation_config() \
        .save_pretrained(tmp_path / "gc")
    from_gc = _run([*base, "--generation-config", tmp_path / "gc", "--seed", "3"])
    assert from_gc.exit_code == 0, from_gc.output
    assert [json.loads(line)["response"] for line in from_gc.stdout.splitlines()] == greedy


# ----------------------------------------------------------------------------- other commands


def test_train_rm_leaves_the_prepared_model_alone(tmp_path, monkeypatch):
    import moalign.rewards.reward_models as rm

    monkeypatch.setenv("MOALIGN_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    trained_into: list[str] = []

    def fake_train(cfg):  # the command's choice of folder is under test, not the training
        trained_into.append(cfg.out)
        return {"val_accuracy": 1.0, "n_val": 1, "train_accuracy": 1.0, "n_train": 1}

    monkeypatch.setattr(rm, "train_reward_model", fake_train)
    res = _run(["train-rm", "--objective", "helpfulness"])
    assert res.exit_code == 0, res.output
    assert trained_into == ["runs/reward_model"] and "--replace-prepared" in res.output
    assert not (tmp_path / "cache" / "reward_models").exists()
    res = _run(["train-rm", "--objective", "helpfulness", "--replace-prepared"])
    assert res.exit_code == 0, res.output
    assert trained_into[-1] == str(tmp_path / "cache" / "reward_models" / "helpfulness")
    res = _run(["train-rm", "--data", "help_prefs", "--replace-prepared"])
    assert res.exit_code != 0 and "--replace-prepared" in str(res.exception)


def test_report_on_one_training_run(tmp_path):
    from moalign.runs.report import training_runs

    unit = tmp_path / "joint"
    unit.mkdir()
    (unit / "metrics.jsonl").write_text('{"step": 1, "reward/a": 0.5}\n')
    assert training_runs(unit) == {"joint": [unit / "metrics.jsonl"]}


def test_version():
    res = _run(["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"moalign {__version__}"


def test_first_and_last_reward_windows_never_overlap():
    from moalign.molma.trainer import first_last_means

    history = [{"a": float(i)} for i in range(3)]
    assert first_last_means(history, ["a"]) == ({"a": 0.0}, {"a": 2.0})
    history = [{"a": float(i)} for i in range(10)]
    assert first_last_means(history, ["a"]) == ({"a": 1.0}, {"a": 8.0})  # 3 each
    assert first_last_means(history[:1], ["a"]) == ({"a": 0.0}, {"a": 0.0})


def test_missing_logger_is_one_line_and_wandb_honours_its_environment(tmp_path, monkeypatch):
    from moalign.core import tracking

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # not installed
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        tracking.make_logger(tmp_path, ["tensorboard"])
    seen = {}
    fake = types.SimpleNamespace(init=lambda **kw: seen.update(kw) or types.SimpleNamespace())
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    tracking.WandbLogger(tmp_path, "moalign", {})
    assert (seen["mode"], seen["project"]) == ("offline", "moalign")  # defaults when unset
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    tracking.WandbLogger(tmp_path, "moalign", {})
    assert (seen["mode"], seen["project"]) == ("online", "mine")


def test_ensemble_of_exported_adapters_is_an_ensemble(assets):
    ens = Ensemble.from_adapters(load_policy(str(assets["base"]), device="cpu"),
                                 {"x": assets["x"], "y": assets["y"]})
    assert ens.objectives == ["x", "y"]
