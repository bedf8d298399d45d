"""Fault injection: checkpoints survive kills, corruption, tampering, planted pickles and a full
disk; every bad config, data file or run artifact is one clear line (exit code 2, no traceback).

Checkpoint tests stamp every LoRA weight and Adam moment of a save with one value (the step, or
another number for a second save of the same step), so the checkpoint a resume restored is read
off the restored tensors themselves, not off the code's own report.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from helpers_objectives import objective, save_tiny_base, write_prompts
from safetensors.torch import load_file, save_file

from moalign import cli
from moalign.core.checkpoint import load_checkpoint, save_checkpoint
from moalign.core.config import from_dict
from moalign.core.errors import USER_ERRORS, CheckpointError
from moalign.core.io import read_jsonl
from moalign.emorl.scst import SCSTConfig, train_scst
from moalign.models import Policy, attach_lora, tiny_causal_lm

KEEP = 2


class SimulatedKill(BaseException):
    """Stands in for SIGKILL: not an Exception, so no clean-up handler of the code under test
    runs and the disk is left as a real kill leaves it."""


class Payload:
    """Unpickling this runs `touch marker` (what a hostile checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def policy() -> Policy:
    return attach_lora(tiny_causal_lm(0), "length")


def lora(policy: Policy) -> list[torch.nn.Parameter]:
    return [p for n, p in policy.model.named_parameters() if "lora_" in n]


def stamp(policy: Policy, value: float) -> torch.optim.Optimizer:
    """Every LoRA weight and both Adam moments of a fresh AdamW set to `value`."""
    optimizer = torch.optim.AdamW(lora(policy), lr=0.01)
    with torch.no_grad():
        for p in lora(policy):
            p.fill_(value)
            optimizer.state[p] = {"step": torch.tensor(float(value)),
                                  "exp_avg": torch.full_like(p, value),
                                  "exp_avg_sq": torch.full_like(p, value)}
    return optimizer


def save(unit: Path, policy: Policy, step: int, value: float | None = None) -> Path:
    value = step if value is None else value
    return save_checkpoint(unit, policy, ["length"], step, stamp(policy, value),
                           extra={"value": value}, keep=KEEP)


def restored(unit: Path, policy: Policy) -> float:
    """Resume into weights and moments stamped 0; the one value they all hold afterwards."""
    optimizer = stamp(policy, 0.0)
    optimizer.state.clear()
    state = load_checkpoint(unit, policy, ["length"], optimizer)
    values = {float(v) for p in lora(policy) for v in p.detach().unique()}
    values |= {float(v) for s in optimizer.state.values() for v in s["exp_avg"].unique()}
    assert len(values) == 1 and values == {state["extra"]["value"]}, values
    return values.pop()


@contextmanager
def kill_before(n: int | None, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Count the file-system steps of a save (fsyncs, renames, removals); with `n`, raise
    SimulatedKill instead of doing step `n`."""
    calls: list[str] = []
    with monkeypatch.context() as m:
        for module, name in ((os, "fsync"), (os, "replace"), (shutil, "rmtree")):
            def step(*args: Any, _real: Any = getattr(module, name), _name: str = name,
                     **kw: Any) -> Any:
                if len(calls) == n:
                    raise SimulatedKill(f"killed before {_name} (step {n})")
                calls.append(_name)
                return _real(*args, **kw)

            m.setattr(module, name, step)
        yield calls


def temporaries(unit: Path) -> list[str]:
    return sorted(p.name for p in unit.glob(".checkpoint-*"))


def numbered(unit: Path) -> list[str]:
    return sorted(p.name for p in unit.glob("checkpoint-*"))


# ----------------------------------------------------------------------------- kills


@pytest.mark.parametrize("step, value", [(6, 6.0), (4, 40.0)], ids=["new step", "same step"])
def test_a_kill_at_any_point_of_a_save_keeps_a_complete_checkpoint(
        policy: Policy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: int,
        value: float) -> None:
    """Checkpoints 2 and 4 exist; a save of `step` is killed before each of its file-system
    steps in turn. Every time the resume restores 4 or the new save, never anything older,
    and removes the temporaries; once the new save is restored, every later kill restores it."""
    template, dry = tmp_path / "template", tmp_path / "dry"
    save(template, policy, 2)
    save(template, policy, 4)
    shutil.copytree(template, dry)
    with kill_before(None, monkeypatch) as calls:
        save(dry, policy, step, value)  # counts the steps
    assert restored(dry, policy) == value
    assert len(calls) >= 8 and {"fsync", "replace", "rmtree"} <= set(calls), calls
    outcomes = []
    for n in range(len(calls)):
        unit = tmp_path / f"kill_{n}"
        shutil.copytree(template, unit)
        with pytest.raises(SimulatedKill), kill_before(n, monkeypatch):
            save(unit, policy, step, value)
        outcomes.append(restored(unit, policy))
        assert temporaries(unit) == [], (n, calls[n])
    assert outcomes[0] == 4.0 and outcomes[-1] == value, outcomes
    first_new = outcomes.index(value)
    assert outcomes == [4.0] * first_new + [value] * (len(outcomes) - first_new), outcomes


# ----------------------------------------------------------------------------- bad files


def _tamper(path: Path) -> None:
    """Plausible new values, same size: only the checksum can tell."""
    tensors = load_file(path)
    key = sorted(tensors)[0]
    tensors[key] = tensors[key] + 0.01
    save_file(tensors, path)


CORRUPTIONS = {
    "tampered adapter": ("adapters/length.safetensors", _tamper,
                         "adapters/length.safetensors does not match its sha256"),
    "truncated adapter": ("adapters/length.safetensors",
                          lambda p: p.write_bytes(p.read_bytes()[:1000]), "(truncated"),
    "zero-byte adapter": ("adapters/length.safetensors", lambda p: p.write_bytes(b""),
                          "adapters/length.safetensors is empty (0 bytes)"),
    "missing adapter": ("adapters/length.safetensors", Path.unlink,
                        "adapters/length.safetensors is missing"),
    "zero-byte state.json": ("state.json", lambda p: p.write_bytes(b""),
                             "state.json is empty (0 bytes)"),
    "truncated tensors": ("state.safetensors", lambda p: p.write_bytes(p.read_bytes()[:-7]),
                          "(truncated"),
    "missing tensors": ("state.safetensors", Path.unlink, "state.safetensors is missing"),
    "no manifest (unfinished)": ("manifest.json", Path.unlink, "no manifest.json"),
    "zero-byte manifest": ("manifest.json", lambda p: p.write_bytes(b""),
                           "manifest.json is damaged"),
    "garbled manifest": ("manifest.json", lambda p: p.write_text("{not json"),
                         "manifest.json is damaged"),
}


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_a_bad_newest_checkpoint_is_skipped_with_one_line(
        policy: Policy, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    rel, corrupt, phrase = CORRUPTIONS[case]
    unit = tmp_path / "unit"
    save(unit, policy, 2)
    save(unit, policy, 4)
    corrupt(unit / "checkpoint-4" / rel)
    capsys.readouterr()
    assert restored(unit, policy) == 2.0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 2, err
    assert f"skip {unit / 'checkpoint-4'}: " in err[0] and phrase in err[0], err
    assert err[1].endswith(f"resume from {unit / 'checkpoint-2'} (step 2)"), err


def test_no_usable_checkpoint_is_one_error_naming_each(policy: Policy, tmp_path: Path) -> None:
    unit = tmp_path / "unit"
    save(unit, policy, 2)
    save(unit, policy, 4)
    (unit / "checkpoint-4" / "state.json").write_bytes(b"")
    _tamper(unit / "checkpoint-2" / "adapters" / "length.safetensors")
    with pytest.raises(CheckpointError) as info:
        restored(unit, policy)
    message = str(info.value)
    assert "\n" not in message and f"no usable checkpoint in {unit}" in message
    assert "checkpoint-4: state.json is empty" in message
    assert "checkpoint-2: adapters/length.safetensors does not match" in message
    assert numbered(unit) == ["checkpoint-2", "checkpoint-4"]  # nothing deleted


def test_planted_pickles_are_never_loaded(policy: Policy, tmp_path: Path) -> None:
    """`state.pt` planted as a 0.1 checkpoint, as a numbered folder, and inside a valid
    checkpoint: never unpickled, so the payload's marker file never appears."""
    sanity, marker = tmp_path / "sanity_marker", tmp_path / "marker"
    torch.save(Payload(sanity), tmp_path / "sanity.pt")
    torch.load(tmp_path / "sanity.pt", weights_only=False)
    assert sanity.exists()  # the planted file is live: loading it would run the payload
    unit = tmp_path / "unit"
    (unit / "checkpoint").mkdir(parents=True)
    torch.save(Payload(marker), unit / "checkpoint" / "state.pt")
    with pytest.raises(CheckpointError, match="is a moalign 0.1 checkpoint .* not loaded"):
        restored(unit, policy)
    save(unit, policy, 4)
    for folder in ("checkpoint-4", "checkpoint-9"):
        (unit / folder).mkdir(exist_ok=True)
        torch.save(Payload(marker), unit / folder / "state.pt")
    assert restored(unit, policy) == 4.0  # checkpoint-9 has no manifest: skipped
    assert not marker.exists()


def test_tied_modules_round_trip(tmp_path: Path) -> None:
    """A fully fine-tuned model as a checkpoint module: tied input/output embeddings are stored
    once and come back tied to the same values."""
    model = tiny_causal_lm(1).model
    other = tiny_causal_lm(2).model
    policy = attach_lora(tiny_causal_lm(0), "length")
    save_checkpoint(tmp_path, policy, [], 1, modules={"policy": model})
    load_checkpoint(tmp_path, policy, [], modules={"policy": other})
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    assert other.lm_head.weight.data_ptr() == other.model.embed_tokens.weight.data_ptr()


# ----------------------------------------------------------------------------- disk full


@pytest.mark.parametrize("n", range(4), ids=["adapter", "tensors", "state.json", "manifest"])
def test_disk_full_keeps_the_last_checkpoint(policy: Policy, tmp_path: Path, n: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The n-th file write of a save fails with ENOSPC: one line naming that file and the
    checkpoint kept; nothing of the previous checkpoints is lost, no temporary is left."""
    unit = tmp_path / "unit"
    save(unit, policy, 2)
    save(unit, policy, 4)
    written: list[int] = []
    real_write = os.write

    def write(fd: int, data: Any) -> int:
        if len(written) == n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(fd)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(CheckpointError) as info:
        save(unit, policy, 6)
    monkeypatch.undo()
    target = ["adapters/length.safetensors", "state.safetensors", "state.json",
              "manifest.json"][n]
    assert str(info.value) == (f"disk full while writing {unit / '.checkpoint-6.partial'}/"
                               f"{target}; kept {unit / 'checkpoint-4'}")
    assert CheckpointError in USER_ERRORS
    assert numbered(unit) == ["checkpoint-2", "checkpoint-4"] and temporaries(unit) == []
    assert restored(unit, policy) == 4.0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 192 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_real_full_disk(policy: Policy, small_disk: Path) -> None:
    unit = small_disk / "unit"
    save(unit, policy, 2)  # ~150 KiB: the second one cannot fit
    with pytest.raises(CheckpointError, match=r"^disk full while writing .*\.checkpoint-4\.partial/"
                       r".*; kept .*checkpoint-2$"):
        save(unit, policy, 4)
    assert numbered(unit) == ["checkpoint-2"] and temporaries(unit) == []
    assert restored(unit, policy) == 2.0


# ----------------------------------------------------------------------------- one-line errors


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fault_assets")
    return {"root": root, "base": save_tiny_base(root / "base"),
            "prompts": write_prompts(root / "p.jsonl")}


def expert_config(assets: dict[str, Path], out: Path, **changes: Any) -> dict[str, Any]:
    cfg = {"policy": str(assets["base"]), "objectives": [objective("length")],
           "data": str(assets["prompts"]), "val_data": str(assets["prompts"]), "n_samples": 2,
           "max_new_tokens": 2, "batch_size": 2, "val_batch": 2, "val_every": 1,
           "max_steps": 2, "save_every": 1, "device": "cpu", "progress": False,
           "out_dir": str(out)}
    return {**cfg, **changes}


def moalign(argv: list[str], monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the `moalign` entry point in this process: (exit code, stderr). An exception that
    escapes `main` (a traceback for the user) fails the test."""
    monkeypatch.setattr(sys, "argv", ["moalign", *argv])
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        cli.main()
    return int(info.value.code or 0), capsys.readouterr().err


def assert_one_line(code: int, err: str, phrase: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, (code, err)
    assert phrase in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def trained(assets: dict[str, Path]) -> Path:
    """A finished 2-step tiny SCST expert (checkpoint-1, checkpoint-2, adapter, summary)."""
    out = assets["root"] / "trained"
    train_scst(from_dict(SCSTConfig, expert_config(assets, out)))
    return out


def interrupted(trained: Path, unit: Path) -> list[str]:
    """A copy of the trained expert as if killed after its last checkpoint; its resume argv."""
    shutil.copytree(trained, unit)
    (unit / "summary.json").unlink()
    shutil.rmtree(unit / "adapter")
    return ["train-expert", "-c", str(unit / "config.yaml"), "--resume", f"out_dir={unit}"]


def without_time(path: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if "second" not in k and k not in ("time", "samples_per_s")}
            for r in read_jsonl(path)]


def test_a_tampered_checkpoint_falls_back_and_reaches_the_same_model(
        trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--resume` refuses the tampered checkpoint-2, says so, resumes checkpoint-1 and, the RNG
    streams restored, retrains step 2 into the very adapter of the uninterrupted run."""
    unit = tmp_path / "unit"
    argv = interrupted(trained, unit)
    _tamper(unit / "checkpoint-2" / "adapters" / "length.safetensors")
    code, err = moalign(argv, monkeypatch, capsys)
    assert code == 0, err
    assert f"skip {unit / 'checkpoint-2'}: adapters/length.safetensors does not match" in err
    assert f"resume from {unit / 'checkpoint-1'} (step 1)" in err
    a, b = (load_file(d / "adapter" / "adapter_model.safetensors") for d in (trained, unit))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    assert without_time(unit / "metrics.jsonl") == without_time(trained / "metrics.jsonl")


def test_no_usable_checkpoint_stops_in_one_line_and_keeps_the_log(
        trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Never a silent restart from step 0 (which would overwrite metrics.jsonl)."""
    unit = tmp_path / "unit"
    argv = interrupted(trained, unit)
    (unit / "checkpoint-2" / "state.safetensors").write_bytes(b"")
    (unit / "checkpoint-1" / "manifest.json").unlink()
    log = (unit / "metrics.jsonl").read_bytes()
    code, err = moalign(argv, monkeypatch, capsys)
    line = assert_one_line(code, err, f"no usable checkpoint in {unit}")
    assert "checkpoint-2: state.safetensors is empty (0 bytes)" in line
    assert "checkpoint-1: no manifest.json" in line
    assert (unit / "metrics.jsonl").read_bytes() == log


# ----------------------------------------------------------------------------- the catalogue

Case = tuple[Any, str]  # (argv builder (root, assets) -> argv, phrase of the one error line)


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def _good(root: Path, a: dict[str, Path]) -> str:
    return yaml.safe_dump(expert_config(a, root / "out"), sort_keys=False)


def raw(edit: Any) -> Any:
    """A train-expert config file: `edit(good YAML text)` -> the file's text or bytes."""
    def build(root: Path, a: dict[str, Path]) -> list[str]:
        return ["train-expert", "-c", str(_write(root / "c.yaml", edit(_good(root, a))))]
    return build


def expert(**changes: Any) -> Any:
    def build(root: Path, a: dict[str, Path]) -> list[str]:
        text = yaml.safe_dump(expert_config(a, root / "out", **changes), sort_keys=False)
        return ["train-expert", "-c", str(_write(root / "c.yaml", text))]
    return build


def data(content: str | bytes, suffix: str = ".jsonl") -> Any:
    return lambda root, a: expert(data=str(_write(root / f"d{suffix}", content)))(root, a)


def override(*items: str) -> Any:
    return lambda root, a: expert()(root, a) + list(items)


def joint(**changes: Any) -> Any:
    def build(root: Path, a: dict[str, Path]) -> list[str]:
        cfg = {"policy": str(a["base"]), "objectives": [objective("vowel")], "device": "cpu",
               "prompts": [str(a["prompts"])], "proportions": [1.0], "out_dir": str(root / "o"),
               "iterations": 1, "memory": 2, "minibatch": 2, "max_new_tokens": 2, **changes}
        return ["train-joint", "-c", str(_write(root / "j.yaml", yaml.safe_dump(cfg)))]
    return build


def study(text: str) -> Any:
    """A study config; were the check to miss, the missing base model stops it at once."""
    def build(root: Path, a: dict[str, Path]) -> list[str]:
        guard = f"policy: {{name: {root / 'no_model'}}}\nout_dir: {root / 'run'}\n"
        return ["run", str(_write(root / "s.yaml", guard + text))]
    return build


def report(rel: str, content: bytes) -> Any:
    """`moalign report` on a run folder holding only one damaged artifact."""
    def build(root: Path, a: dict[str, Path]) -> list[str]:
        _write(root / "run" / rel, content)
        return ["report", str(root / "run")]
    return build


PYTHON_TAG = "max_steps: !!python/object/apply:os.system ['touch /tmp/moalign_pwned']"
CATALOGUE: dict[str, Case] = {
    # YAML files
    "syntax error": (raw(lambda g: g + "bad: [a, b\n"), "YAML syntax error"),
    "bad indentation": (raw(lambda g: g + "  lr: 1\n lr: 2\n"), "YAML syntax error"),
    "tab indentation": (raw(lambda g: g + "bad:\n\t- a\n"), "YAML syntax error"),
    "!!python/object tag": (raw(lambda g: g.replace("max_steps: 2", PYTHON_TAG)),
                            "the tag !!python/object/apply:os.system is not allowed"),
    "!!python/name tag": (raw(lambda g: g + "system: !!python/name:os.system\n"),
                          "the tag !!python/name:os.system is not allowed"),
    "UTF-16 file": (raw(lambda g: g.encode("utf-16")), "(it looks like UTF-16)"),
    "latin-1 byte": (raw(lambda g: g.encode() + b"system: caf\xe9\n"), "(byte 0xe9)"),
    "top-level list": (raw(lambda g: "- a\n- b\n"), "must hold a YAML mapping"),
    "duplicate key": (raw(lambda g: g + "max_steps: 5\n"),
                      "duplicate key 'max_steps' (first given on line"),
    "duplicate nested key": (raw(lambda g: g.replace("- kind: python", "- kind: python\n"
                                                     "  kind: python")),
                             "duplicate key 'kind'"),
    "config missing": (lambda root, a: ["train-expert", "-c", str(root / "no.yaml")],
                       "does not exist"),
    "config is a folder": (lambda root, a: ["train-expert", "-c", str(root)], "is a folder"),
    # values
    "seed -1": (expert(seed=-1), "seed must be an integer in [0, 2**32 - 1], got -1"),
    "seed 2**70": (expert(seed=2**70), "seed must be an integer in [0, 2**32 - 1]"),
    "seed text": (expert(seed="abc"), "seed: expected int"),
    "weight_decay -5": (expert(weight_decay=-5), "weight_decay must be a finite number >= 0"),
    "weight_decay nan": (expert(weight_decay=float("nan")), "got nan"),
    "lr 0": (expert(lr=0), "lr must be a finite number > 0"),
    "device tpu": (expert(device="tpu"), "'tpu' is not a device"),
    "device cuda:99": (expert(device="cuda:99"), "is not available on this machine"),
    "logger misspelled": (expert(loggers=["tensorbord"]), "unknown logger 'tensorbord'"),
    "out_dir is a file": (lambda root, a: expert(out_dir=str(_write(root / "f", "x")))(root, a),
                          "is not a folder"),
    "out_dir inside a file": (
        lambda root, a: expert(out_dir=str(_write(root / "f", "x") / "sub"))(root, a),
        "(its parent"),
    "unknown key": (expert(max_stepz=3), "unknown config key(s) ['max_stepz']"),
    "max_steps 1.5": (expert(max_steps=1.5), "expected an integer"),
    "n_samples 1": (expert(n_samples=1), "n_samples must be >= 2"),
    "no objectives": (expert(objectives=[]), "objectives is empty"),
    "unknown objective": (expert(objectives=["no_such_objective"]), "unknown objective"),
    "unknown transform": (expert(reward_transform="foo"), "'foo' is not one of"),
    "keep_checkpoints 0": (expert(keep_checkpoints=0), "keep_checkpoints must be >= 1"),
    "scorer module missing": (expert(objectives=[{"kind": "python", "name": "x",
                                                  "function": "no_such_module_x:f"}]),
                              "cannot import scorer function"),
    "override without =": (override("max_steps"), "must look like key=value"),
    "override bad YAML": (override("max_steps=[1,"), "YAML syntax error"),
    "override python tag": (override("system=!!python/name:os.system"), "is not allowed"),
    # data
    "prompt null": (data('{"prompt": "ok"}\n{"prompt": null}\n'), "prompt 2 is empty"),
    "prompt 5": (data('{"prompt": "ok"}\n{"prompt": 5}\n'), "prompt 2 is 5, a int, not text"),
    "prompt list": (data('{"prompt": "ok"}\n{"prompt": ["a"]}\n'), "prompt 2 is ['a'], a list"),
    "prompt empty": (data('{"prompt": "ok"}\n{"prompt": ""}\n'), "prompt 2 is empty"),
    "prompt blank": (data('{"prompt": "ok"}\n{"prompt": "  "}\n'), "prompt 2 is empty"),
    "inline prompt null": (expert(data=["ok", None]), "prompt 2 is empty"),
    "inline prompt 5": (expert(data=["ok", 5]), "prompt 2 is 5, a int"),
    "torn JSONL line": (data('{"prompt": "ok"}\n{"prompt": "a\n{"prompt": "b"}\n'),
                        "line 2 is not valid JSON"),
    "non-UTF-8 JSONL": (data(b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n'),
                        "d.jsonl: line 2, column 16 is not UTF-8 text"),
    "JSONL number line": (data('{"prompt": "ok"}\n5\n'), "line 2 holds a JSON int"),
    "non-UTF-8 CSV": (data(b"prompt\nok\ncaf\xe9\n", ".csv"), "d.csv: line 3, column 4"),
    "non-UTF-8 text": (data(b"ok\ncaf\xe9\n", ".txt"), "d.txt: line 2, column 4"),
    "CSV without the column": (data("text\nhello\n", ".csv"), "has no column 'prompt'"),
    "empty data file": (data(""), "holds no rows"),
    "unknown data suffix": (data("x", ".xyz"), "cannot tell the format"),
    "missing data file": (expert(data="/no/such/file.jsonl"), "does not exist"),
    # MOLMA
    "joint weight_decay -5": (joint(weight_decay=-5), "weight_decay must be a finite number"),
    "joint seed -1": (joint(seed=-1), "seed must be an integer in [0, 2**32 - 1]"),
    "joint logger": (joint(loggers=["wandbb"]), "unknown logger 'wandbb'"),
    "joint betas": (joint(betas=[0.9]), "betas needs two numbers"),
    "joint null prompt": (lambda root, a: joint(prompts=[str(_write(
        root / "p.jsonl", '{"prompt": "a"}\n{"prompt": null}\n'))])(root, a),
                          "prompt 2 is empty"),
    # studies
    "study duplicate key": (study("kind: emorl\nseed: 0\nkind: molma\n"),
                            "duplicate key 'kind'"),
    "study python tag": (study("kind: !!python/name:os.system\n"), "is not allowed"),
    "study training seed -1": (study("kind: emorl\ntraining_seeds: [-1]\n"),
                               "training_seeds[0] must be an integer"),
    "study evaluation seed": (study("kind: emorl\nevaluation: {seeds: [0, 4294967296]}\n"),
                              "evaluation.seeds[1] must be an integer"),
    # run artifacts read by `moalign report`
    "report torn metrics line": (report("seed_0/experts/x/metrics.jsonl",
                                        b'{"step": 0\n{"step": 1}\n'),
                                 "metrics.jsonl: line 1 is not valid JSON"),
    "report non-UTF-8 generations": (report("eval/generations/base.jsonl",
                                            b'{"prompt": "caf\xe9"}\n'),
                                     "base.jsonl: line 1, column 16 is not UTF-8 text"),
    "report empty table.json": (report("eval/table.json", b""),
                                "table.json is not valid JSON (line 1, column 1"),
    "report non-UTF-8 config": (report("config.yaml", b"name: caf\xe9\n"),
                                "config.yaml: line 1, column 10 is not UTF-8 text"),
    "report missing folder": (lambda root, a: ["report", str(root / "nope")], "does not exist"),
}


@pytest.mark.parametrize("case", CATALOGUE)
def test_every_bad_input_is_one_clear_line(case: str, assets: dict[str, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    build, phrase = CATALOGUE[case]
    monkeypatch.chdir(tmp_path)
    code, err = moalign(build(tmp_path, assets), monkeypatch, capsys)
    assert_one_line(code, err, phrase)
    assert not list(tmp_path.glob("out/checkpoint-*")) and not Path("/tmp/moalign_pwned").exists()
