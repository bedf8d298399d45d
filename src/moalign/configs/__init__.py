"""The study configs shipped with moalign (package data), found by name from any folder.

`moalign run counsel-demo` (or `counsel-demo.yaml`) resolves here when no such file exists in the
current folder; `moalign run path/to/study.yaml` still reads that file.
"""

from __future__ import annotations

from pathlib import Path

from moalign.core.config import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent
SUFFIX = ".yaml"


def shipped_config_names() -> list[str]:
    """Names of the shipped study configs (file stems), sorted."""
    return sorted(p.stem for p in CONFIG_DIR.glob(f"*{SUFFIX}"))


def shipped_config(name: str) -> Path:
    """The shipped config file called `name` (`counsel-demo` or `counsel-demo.yaml`)."""
    stem = name.removesuffix(SUFFIX)
    names = shipped_config_names()
    if stem not in names:
        raise ConfigError(f"no shipped study config {name!r}; shipped configs: "
                          f"{', '.join(names)} (or give a path to a YAML file)")
    return CONFIG_DIR / f"{stem}{SUFFIX}"
