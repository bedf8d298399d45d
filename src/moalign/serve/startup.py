"""Loading the served ensemble with one clear line for every fault of ``ensemble.json``.

The manifest is checked field by field before anything heavy is loaded (missing file, invalid
JSON or UTF-8, not an object, unknown or missing keys, wrong types, no experts, missing adapter
folders, bad searched weights); a model or adapter that then fails to load is reported with the
path it came from (`moalign.serve.app.load_served_ensemble`). Every fault is a `ConfigError` (or
`FileNotFoundError`), which the CLI prints as one line. This module stays light (no torch), so
`moalign serve` reports a bad manifest at once.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from moalign.core.config import ConfigError
from moalign.emorl.manifest import MANIFEST, EnsembleManifest

FIELDS = {f.name: f for f in dataclasses.fields(EnsembleManifest)}


def read_manifest(run_dir: str | Path) -> EnsembleManifest:
    """`RUN_DIR/ensemble.json`, checked; `ConfigError` names the file and the fault."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: point `moalign serve` at a run directory "
                                "made by `moalign run` or `moalign ensemble create`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e.msg} at line {e.lineno} column "
                          f"{e.colno}") from None
    check_manifest_data(data, path)
    return EnsembleManifest(**data)


def check_manifest_data(data: Any, path: Path) -> None:
    """Keys and types of a parsed manifest (`base`, `experts`, `system`, `best_weights`)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; the keys are {sorted(FIELDS)}")
    for key in ("base", "experts"):
        if key not in data:
            raise ConfigError(f"{path}: the key {key!r} is missing")
    if not isinstance(data["base"], str) or not data["base"].strip():
        raise ConfigError(f"{path}: 'base' must be a model id or folder (a non-empty string)")
    experts = data["experts"]
    if not isinstance(experts, dict) or not experts or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in experts.items()):
        raise ConfigError(f"{path}: 'experts' must be a non-empty object {{objective: adapter "
                          "folder} of strings")
    if data.get("system") is not None and not isinstance(data["system"], str):
        raise ConfigError(f"{path}: 'system' must be a string or null")
    _check_best_weights(data.get("best_weights"), list(experts), path)


def _check_best_weights(best: Any, objectives: list[str], path: Path) -> None:
    if best is None:
        return
    if not isinstance(best, dict):
        raise ConfigError(f"{path}: 'best_weights' must be an object {{objective: weight}} or "
                          "null")
    unknown = sorted(set(best) - set(objectives))
    if unknown:
        raise ConfigError(f"{path}: 'best_weights' names unknown objective(s) {unknown}; the "
                          f"experts are {objectives}")
    for name, w in best.items():
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise ConfigError(f"{path}: best_weights.{name} must be a finite number >= 0, "
                              f"got {w!r}")
    if best and not any(best.values()):
        raise ConfigError(f"{path}: 'best_weights' are all zero")


def check_adapters(manifest: EnsembleManifest, run_dir: str | Path) -> dict[str, Path]:
    """Every expert's adapter folder, which must hold adapter_config.json."""
    paths = manifest.adapter_paths(run_dir)
    for name, folder in paths.items():
        if not (folder / "adapter_config.json").is_file():
            what = "does not exist" if not folder.exists() else "holds no adapter_config.json"
            raise ConfigError(f"{Path(run_dir) / MANIFEST}: the adapter folder of expert "
                              f"{name!r}, {folder}, {what}")
    return paths


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300] if text else ''}"
