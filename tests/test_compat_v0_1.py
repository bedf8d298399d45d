"""Run directories written by moalign 0.1 (before the re-layout) still load, same numbers.

`tests/fixtures/v0_1_run` is the run directory of the tiny EMORL study (`tiny_study_overrides` in
helpers_objectives) written by moalign 0.1.0 at commit 4ca3515, with every absolute path replaced
by `@ROOT@`: `@ROOT@/base` is `save_tiny_base(ROOT / "base")` (seed 0), `@ROOT@/p.jsonl` is
`write_prompts(ROOT / "p.jsonl")` and the study itself was `@ROOT@/study`. The report folder and
the vowel expert's checkpoint were dropped to keep it small.

Each test copies it under a fresh root, fills in `@ROOT@`, and checks the current code against the
values stored in the fixture's files (never re-derived with the current code): ensembles load with
their experts, finished training units are reused while the pickled 0.1 checkpoint of an unfinished
one is refused (never unpickled), the weight search resumes from its results, the report's tables
show eval/table.json, and re-summarising / re-evaluating reproduces the stored numbers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pickle
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers_objectives import save_tiny_base, tiny_study_overrides, write_prompts
from peft import get_peft_model_state_dict
from safetensors.torch import load_file

from moalign import cli
from moalign.core.checkpoint import has_checkpoint, load_checkpoint
from moalign.core.config import load_config
from moalign.core.errors import CheckpointError
from moalign.emorl.manifest import load_ensemble
from moalign.emorl.scst import SCSTConfig
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


ADDED_AFTER_0_1 = {"lexical_metrics", "data_paper", "diversity2_authors", "edit_rate_authors"}
"""Keys later versions add to units and tables (the EMORL authors' metrics, the paper's search
count): new information, not a change to what 0.1 stored."""


def as_0_1(obj: Any) -> Any:
    """`obj` without the keys added after 0.1, at any depth."""
    if isinstance(obj, dict):
        return {k: as_0_1(v) for k, v in obj.items() if k not in ADDED_AFTER_0_1}
    if isinstance(obj, list):
        return [as_0_1(v) for v in obj]
    return obj


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


REFUSAL = "is a moalign 0.1 checkpoint (state.pt is a pickle"


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any unpickling (torch.load, pickle.load/loads) fails the test loudly."""
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a checkpoint was unpickled")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, refuse)


def test_the_pickled_checkpoint_is_refused_not_loaded(run: Path, no_unpickling: None) -> None:
    out = run / EXPERT
    cfg = load_config(SCSTConfig, out / "config.yaml")
    policy = attach_lora(load_policy(cfg.policy, device="cpu"), "length")
    assert has_checkpoint(out)  # there is something to resume: refused, never a silent restart
    with pytest.raises(CheckpointError, match="not loaded; delete that folder") as info:
        load_checkpoint(out, policy, ["length"])
    assert REFUSAL in str(info.value) and str(out / "checkpoint") in str(info.value)
    assert "\n" not in str(info.value)
    assert (out / "checkpoint" / "state.pt").read_bytes() == \
        (FIXTURE / EXPERT / "checkpoint" / "state.pt").read_bytes()


def test_resuming_the_unfinished_unit_refuses_in_one_line(run: Path, no_unpickling: None,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    """`train-expert --resume` of a unit with only its 0.1 checkpoint: exit 2, one line, and
    nothing of the unit (metrics, checkpoint) touched."""
    out = run / EXPERT
    (out / "summary.json").unlink()
    shutil.rmtree(out / "adapter")
    monkeypatch.setattr(sys, "argv", ["moalign", "train-expert", "-c", str(out / "config.yaml"),
                                      "--resume"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and REFUSAL in lines[0], err
    assert read(out / "metrics.jsonl") == stored(run, EXPERT / "metrics.jsonl")
    assert not list(out.glob("checkpoint-*"))


def test_a_study_rerun_refuses_the_unfinished_unit(run: Path, no_unpickling: None,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`moalign run` resumes units by itself: the unfinished one stops it with the refusal."""
    (run / EXPERT / "summary.json").unlink()
    shutil.rmtree(run / EXPERT / "adapter")
    with pytest.raises(CheckpointError, match="state.pt is a pickle"):
        rerun(run, capsys, "stages/experts.json")
    assert (run / EXPERT / "checkpoint" / "state.pt").is_file()


def test_finished_units_are_reused_without_their_checkpoint(run: Path, no_unpickling: None,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    """Redoing the experts stage reuses both finished experts (adapter + summary.json) as they
    are: the one with a pickled checkpoint is neither refused nor retrained."""
    rerun(run, capsys, "stages/experts.json")
    for name in ("length", "vowel"):
        unit = Path("seed_0/experts") / name
        assert read(run / unit / "summary.json") == stored(run, unit / "summary.json")
        weights = unit / "adapter" / "adapter_model.safetensors"
        assert (run / weights).read_bytes() == (FIXTURE / weights).read_bytes()
        assert read(run / unit / "metrics.jsonl") == stored(run, unit / "metrics.jsonl")
    assert read(run / "stages/experts.json")["result"] == \
        stored(run, "stages/experts.json")["result"]


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
    assert as_0_1(read(run / "eval/table.json")) == stored(run, "eval/table.json")
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
        assert as_0_1(without(read(run / rel), "seconds")) == \
            without(stored(run, rel), "seconds"), rel
    assert as_0_1(read(run / "eval/table.json")) == stored(run, "eval/table.json")


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


def test_publish_evidence_copies_only_the_small_outputs(run: Path, tmp_path: Path) -> None:
    """scripts/publish_evidence.py on a run folder: report (rebuilt), table, config; never the
    adapters or checkpoints; files over the size limit skipped."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "publish_evidence.py"
    spec = importlib.util.spec_from_file_location("publish_evidence", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "docs"
    files = module.publish(run, out, 2**20)
    rel = {f.relative_to(out / run.name).as_posix() for f in files}
    assert {"config.yaml", "eval/table.json", "report/report.md", "report/claims.md",
            "seed_0/search/results.jsonl"} <= rel
    assert not any("experts" in r or "checkpoint" in r or r.endswith(".safetensors")
                   for r in rel)
    assert read(out / run.name / "eval" / "table.json") == read(run / "eval" / "table.json")
    small = module.publish(run, out, 2000)  # a 2 kB cap: the report and results are skipped
    assert small and all(f.stat().st_size <= 2000 for f in small)
    assert not (out / run.name / "report" / "report.html").exists()
