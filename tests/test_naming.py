"""`moalign.core.naming`: the one rule for objective names, allowed names and folder-safe text."""

from __future__ import annotations

import pytest

from moalign.core.config import ConfigError
from moalign.core.naming import check_name, objective_name, slug


@pytest.mark.parametrize(("spec", "name"), [
    ("reflection", "reflection"),  # embedded objective
    ("runs/rm/helpfulness", "helpfulness"),  # scorer folder: its last component
    ({"name": "you", "kind": "python", "function": "pkg.mod:f"}, "you"),
])
def test_objective_name(spec, name):
    assert objective_name(spec) == name
    assert objective_name(spec, strict=False) == name


@pytest.mark.parametrize(("spec", "message", "label"), [
    ("python:pkg.mod:f", "write it as a mapping with a name", "python:pkg.mod:f"),
    ({"kind": "python", "function": "pkg.mod:f"}, "needs a `name`", "python"),
])
def test_unnamed_objectives_are_refused_or_labelled(spec, message, label):
    with pytest.raises(ConfigError, match=message):
        objective_name(spec)
    assert objective_name(spec, strict=False) == label


def test_check_name():
    assert check_name("objective", "expert_reflection-2") == "expert_reflection-2"
    for bad in ("bad name", "a/b", "x:y", ""):
        with pytest.raises(ConfigError, match=r"objective name .* must match"):
            check_name("objective", bad)
    for bad in ("lora", "a", "ora_"):  # PEFT would read them as LoRA key prefixes
        with pytest.raises(ConfigError, match="expert name .*'lora_' prefix"):
            check_name("expert", bad)


@pytest.mark.parametrize(("text", "folder"), [
    ("so:safety", "so_safety"),  # MOLMA method folders (train/so_safety)
    ("so_weighted", "so_weighted"),
    ("python:pkg.mod:func", "python_pkg.mod_func"),  # train-expert's default out_dir
    ("/abs/rm/x", "abs_rm_x"),
    ("::", "run"),
])
def test_slug(text, folder):
    assert slug(text) == folder


def test_studies_and_ensembles_name_objectives_by_the_one_rule(tmp_path):
    from moalign.emorl.manifest import create_ensemble
    from moalign.emorl.study import StudyConfig

    cfg = StudyConfig(objectives=["reflection", {"name": "bad name", "kind": "python"}])
    with pytest.raises(ConfigError, match="objective name 'bad name' must match"):
        cfg.validate()
    assert StudyConfig(objectives=["reflection", "runs/rm/empathy"]).objective_names == [
        "reflection", "empathy"]
    with pytest.raises(ConfigError, match="objective name 'a' is part of PEFT's 'lora_'"):
        create_ensemble(tmp_path / "ens", "base", {"a": tmp_path / "adapter"}, None)
    with pytest.raises(ConfigError, match="objective name 'x:y' must match"):
        create_ensemble(tmp_path / "ens", "base", {"x:y": tmp_path / "adapter"}, None)
