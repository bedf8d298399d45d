"""Names inside a run: what an objective is called, which names are allowed, folder-safe text.

An objective's name is its expert's folder and LoRA adapter name (EMORL §4.1: one expert per
objective), its key in `--weights name=value` lists, summaries and report rows. Every module asks
`objective_name` for it, so the name of one objective never differs between two of those places.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from moalign.core.config import ConfigError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_\-]+$")
_UNSAFE = re.compile(r"[^0-9A-Za-z_.-]+")


def check_name(kind: str, value: str) -> str:
    """`value` unchanged when it is a valid `kind` name (an objective, an expert adapter), else
    ConfigError.

    Names appear in `--weights name=value` lists, folder names and PEFT state-dict keys: letters,
    digits, `_` and `-` only. A name inside `lora_` (e.g. `lora`, `a`) makes PEFT mistake its
    weights for LoRA prefixes when loading, so it is refused too.
    """
    if not NAME_PATTERN.match(value):
        raise ConfigError(f"{kind} name {value!r} must match {NAME_PATTERN.pattern} (letters, "
                          "digits, '_' and '-': it names folders and --weights name=value keys)")
    if value in "lora_":
        raise ConfigError(f"{kind} name {value!r} is part of PEFT's 'lora_' prefix; pick a "
                          "longer name")
    return value


def objective_name(spec: object, strict: bool = True) -> str:
    """The name of an objective spec: a mapping's `name`; an embedded objective's name or a scorer
    folder's last component (`runs/rm/helpfulness` -> `helpfulness`), as its scorer names itself.

    `kind:value` shorthand and a mapping without `name` have no name: ConfigError when `strict`
    (a study needs one for the expert's folder), else the text / the mapping's `kind` (a label).
    """
    if isinstance(spec, dict):
        if "name" in spec:
            return str(spec["name"])
        if not strict:
            return str(spec.get("kind", "?"))
        raise ConfigError(f"objective {spec} needs a `name` (used for its expert)")
    if isinstance(spec, str) and ":" not in spec:
        return Path(spec).name
    if not strict:
        return str(spec)
    raise ConfigError(f"objective {spec!r}: write it as a mapping with a name, e.g. "
                      "{name: you, kind: python, function: pkg.mod:func}")


def check_objectives(specs: Sequence[object], example: str) -> None:
    """A trainer's `objectives`: at least one, each a name or a mapping (ConfigError otherwise;
    `example` shows a valid list, e.g. "reflection")."""
    if not specs:
        raise ConfigError(f"objectives is empty; name at least one, e.g. objectives=[{example}]")
    for spec in specs:
        if not isinstance(spec, str | dict):
            raise ConfigError(f"objective {spec!r} must be a name or a mapping")


def slug(text: str) -> str:
    """`text` as one folder name: runs of other characters than letters, digits, `_ . -` become
    `_` (`so:safety` -> `so_safety`, `python:pkg.mod:f` -> `python_pkg.mod_f`)."""
    return _UNSAFE.sub("_", text).strip("_") or "run"
