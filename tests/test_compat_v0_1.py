"""Run directories written by moalign 0.1 (before the re-layout) still load, same numbers.

`tests/fixtures/v0_1_run` is the run directory of the tiny EMORL study (`tiny_study_overrides` in
helpers_objectives) written by moalign 0.1.0 at commit 4ca3515, with every absolute path replaced
by `@ROOT@`: `@ROOT@/base` is `save_tiny_base(ROOT / "base")` (seed 0), `@ROOT@/p.jsonl` is
`write_prompts(ROOT / "p.jsonl")` and the study itself was `@ROOT@/study`. The report folder and
the vowel expert's checkpoint were dropped to keep it small.

Each test copies it under a fresh root, fills in `@ROOT@`, and checks the current code against the
values stored in the fixture's files (never re-derived with the current code): ensembles load with
their experts, the SCST checkpoint resumes, the weight search resumes from its results, the report's
tables show eval/table.json, and re-summarising / re-evaluating reproduces the stored numbers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers_objectives import save_tiny_base, tiny_study_overrides, write_prompts
from peft import get_peft_model_state_dict
from safetensors.torch import load_file

from moalign.core.checkpoint import load_checkpoint
from moalign.core.config import load_config
from moalign.emorl.manifest import load_ensemble
from moalign.emorl.scst import SCSTConfig, train_scst
from moalign.emorl.study import StudyConfig, run_emorl_study
from moalign.models import attach_lora, load_policy
from moalign.runs.report import build_report

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "v0_1_run"
PLACEHOLDER = "@ROOT@"
TEXT_SUFFIXES = (".json", ".jsonl", ".yaml")
EXPERT = Path("seed_0/experts/length")  # the expert whose checkpoint the fixture keeps
# Σ|w| over the tiny base's tensors when the fixture was written: the stored numbers hold only
# for this base (tiny_causal_lm(0)); a different value means the base changed, not the formats.
BASE_ABS_SUM = 25533.723892696973


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("v0_1_assets")
    base = save_tiny_base(root / "base")
    tensors = load_file(base / "model.safetensors")
    total = sum(float(t.double().abs().sum()) for _, t in sorted(tensors.items()))
    assert total == pytest.approx(BASE_ABS_SUM, rel=1e-12), "the tiny test base changed"
    write_prompts(root / "p.jsonl")
    return root


@pytest.fixture
def run(assets: Path, tmp_path: Path) -> Path:
    """The fixture as `ROOT/study`, `@ROOT@` filled in, next to the tiny base and prompts."""
    (tmp_path / "base").symlink_to(assets / "base", target_is_directory=True)
    shutil.copy(assets / "p.jsonl", tmp_path / "p.jsonl")
    study = tmp_path / "study"
    shutil.copytree(FIXTURE, study)
    for path in study.rglob("*"):
        if path.suffix in TEXT_SUFFIXES:
            path.write_text(fill(path.read_text(encoding="utf-8"), tmp_path), encoding="utf-8")
    relocate_search_fingerprint(study / "seed_0")
    return study


def relocate_search_fingerprint(seed_dir: Path) -> None:
    """The search fingerprint hashes each expert's adapter folder, whose adapter_config.json names
    the base by absolute path: redo those digests for this copy with 0.1's rule (sha256 over the
    sorted relative file names and contents, first 16 hex digits); every other key stays."""
    path = seed_dir / "search" / "fingerprint.json"
    fingerprint = json.loads(path.read_text(encoding="utf-8"))
    for name, rel in fingerprint["experts"].items():
        h = hashlib.sha256()
        folder = seed_dir / rel
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(folder)).encode("utf-8") + f.read_bytes())
        fingerprint["adapter_sha256"][name] = h.hexdigest()[:16]
    path.write_text(json.dumps(fingerprint, indent=2, sort_keys=True), encoding="utf-8")


def fill(text: str, root: Path) -> str:
    return text.replace(PLACEHOLDER, str(root))


def stored(run: Path, rel: str | Path) -> Any:
    """A fixture file as written by 0.1 (paths filled in for this run's root)."""
    text = fill((FIXTURE / rel).read_text(encoding="utf-8"), run.parent)
    if str(rel).endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def assert_adapter_equals(model: Any, adapter: str, weights_file: Path) -> None:
    """The live LoRA weights of `adapter` equal a saved adapter_model.safetensors."""
    saved = load_file(weights_file)
    live = get_peft_model_state_dict(model, adapter_name=adapter)
    assert sorted(live) == sorted(saved)
    for key, tensor in saved.items():
        assert torch.equal(live[key].cpu(), tensor), key


def without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


# ----------------------------------------------------------------------------- ensembles


@pytest.mark.parametrize("where", [".", "seed_0"])
def test_ensemble_manifest_loads_with_its_experts(run: Path, where: str) -> None:
    folder = run / where
    manifest_json = stored(run, Path(where) / "ensemble.json")
    ensemble, manifest = load_ensemble(folder, device="cpu")
    assert manifest.base == manifest_json["base"]
    assert manifest.experts == manifest_json["experts"]
    assert manifest.best_weights == manifest_json["best_weights"]
    assert manifest.system == manifest_json["system"]
    assert ensemble.objectives == list(manifest_json["experts"])
    for name, rel in manifest_json["experts"].items():
        assert_adapter_equals(ensemble.model, name, folder / rel / "adapter_model.safetensors")


# ----------------------------------------------------------------------------- checkpoints


def test_scst_checkpoint_restores_its_step_and_adapter(run: Path) -> None:
    out = run / EXPERT
    cfg = load_config(SCSTConfig, out / "config.yaml")
    meta = stored(run, EXPERT / "checkpoint" / "meta.json")
    policy = load_policy(cfg.policy, device="cpu")
    for name in meta["adapters"]:
        attach_lora(policy, name, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)
    state = load_checkpoint(out, policy, meta["adapters"])
    assert state["step"] == meta["step"]
    assert state["extra"]["seconds"] == pytest.approx(stored(run, EXPERT / "summary.json")
                                                      ["seconds"], abs=5e-4)
    for name in meta["adapters"]:
        assert_adapter_equals(policy.model, name, out / "checkpoint" / "adapters" / name
                              / "adapter_model.safetensors")


def test_scst_trainer_resumes_the_checkpoint(run: Path) -> None:
    """`train_scst(resume=True)` continues from the stored checkpoint (at max_steps: nothing left
    to train) and writes the summary, adapter and metrics the 0.1 run wrote."""
    out = run / EXPERT
    (out / "summary.json").unlink()
    shutil.rmtree(out / "adapter")
    summary = train_scst(load_config(SCSTConfig, out / "config.yaml"), resume=True)
    assert summary == stored(run, EXPERT / "summary.json")
    assert read(out / "summary.json") == summary
    assert read(out / "metrics.jsonl") == stored(run, EXPERT / "metrics.jsonl")
    weights = "adapter/adapter_model.safetensors"
    new, old = load_file(out / weights), load_file(FIXTURE / EXPERT / weights)
    assert sorted(new) == sorted(old)
    assert all(torch.equal(new[k], old[k]) for k in old)


# ----------------------------------------------------------------------------- study stages


def rerun(run: Path, capsys: pytest.CaptureFixture[str], *remove: str) -> None:
    """Delete some artifacts of the 0.1 run and let the current `moalign run` of the same study
    (today's config format) redo them; it must take the saved 0.1 config.yaml for the same one."""
    for rel in remove:
        path = run / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    root = run.parent
    capsys.readouterr()
    run_emorl_study(load_config(StudyConfig, None,
                                tiny_study_overrides(root / "base", root / "p.jsonl", run)))
    assert "differs from this config" not in capsys.readouterr().err


def test_search_resumes_from_the_stored_results(run: Path, capsys) -> None:
    rerun(run, capsys, "stages/search.json")
    for rel in ("results.jsonl", "best_weights.json", "pareto.json"):
        assert read(run / "seed_0/search" / rel) == stored(run, f"seed_0/search/{rel}"), rel
    new, old = (h["history"] for h in (read(run / "seed_0/search/history.json"),
                                       stored(run, "seed_0/search/history.json")))
    assert [h["n_new"] for h in new] == [0] * len(old)  # every point came from results.jsonl
    assert [without(h, "n_new") for h in new] == [without(h, "n_new") for h in old]
    for rel in ("ensemble.json", "seed_0/ensemble.json"):
        assert read(run / rel) == stored(run, rel), rel
    assert read(run / "stages/search.json")["result"] == stored(run, "stages/search.json")[
        "result"]


def test_resummarising_the_stored_units_reproduces_the_table(run: Path, capsys) -> None:
    rerun(run, capsys, "stages/summary.json", "eval/table.json", "eval/generations")
    assert read(run / "eval/table.json") == stored(run, "eval/table.json")
    for path in sorted((FIXTURE / "eval/generations").glob("*.jsonl")):
        rel = f"eval/generations/{path.name}"
        assert read(run / rel) == stored(run, rel), rel
    assert without(read(run / "study.json"), "last_invocation_seconds") == \
        without(stored(run, "study.json"), "last_invocation_seconds")


def test_reevaluating_every_system_reproduces_the_stored_units(run: Path, capsys) -> None:
    """Every system decodes again (the ensemble with its stored best weights for soup, logits and
    EMORL): same responses, same rewards, same table."""
    rerun(run, capsys, "stages/evaluate.json", "stages/summary.json", "eval")
    units = sorted((FIXTURE / "eval/units").rglob("*.json"))
    assert len(units) == 16
    assert sorted((run / "eval/units").rglob("*.json")) == \
        sorted(run / u.relative_to(FIXTURE) for u in units)
    for unit in units:
        rel = unit.relative_to(FIXTURE)
        assert without(read(run / rel), "seconds") == without(stored(run, rel), "seconds"), rel
    assert read(run / "eval/table.json") == stored(run, "eval/table.json")


# ----------------------------------------------------------------------------- report


def _cell(value: list[float] | None) -> str:
    return "—" if value is None else f"{value[0]:.4f} ± {value[1]:.4f}"


def test_report_tables_show_the_stored_table(run: Path) -> None:
    html_path, md_path = build_report(run)
    md = md_path.read_text(encoding="utf-8").replace("**", "")
    html = html_path.read_text(encoding="utf-8")
    table = stored(run, "eval/table.json")
    for m in table["methods"]:
        cells = [m["label"], *(_cell(m["rewards"][o]) for o in table["objectives"]),
                 _cell(m["mean_reward"])]
        assert "| " + " | ".join(cells) + " |" in md.splitlines(), m["key"]
        assert all(c in html for c in cells[1:]), m["key"]
    assert f"{len(table['seeds'])} seed(s) × {table['runs']} generation run(s)" in md
    assert (run / "config.yaml").read_text(encoding="utf-8").strip() in md
