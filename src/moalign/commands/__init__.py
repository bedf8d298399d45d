"""The `moalign` commands: thin wrappers that parse options, call the library and print.

Command options — one convention for every command
---------------------------------------------------

Each command is backed by one typed config dataclass (`SCSTConfig` for `train-expert`,
`GenerateConfig` for `generate`, ...). Its settings are resolved in this order, a later step
winning over an earlier one:

1. the dataclass defaults;
2. ``--config FILE.yaml`` (``-c``): a YAML mapping of the dataclass's fields;
3. typed flags — shortcuts for the most common fields, each equivalent to one ``field=value``
   (``--objective reflection`` is ``objectives=[reflection]``, ``--max-new-tokens 32`` is
   ``max_new_tokens=32``); a flag that is not given leaves the field alone;
4. trailing ``key=value`` overrides, dotted for nested sections (``lora.r=16``, ``experts.x=DIR``),
   values read as YAML (``3``, ``1e-4``, ``null``, ``[a,b]``, ``{a: 1}``).

The config loader (`moalign.core.config.load_config`) then checks types, rejects unknown keys
(listing the valid ones) and runs the dataclass's ``validate()``: every option error is a
`ConfigError` that says how to fix it, printed as one line with exit code 2. Commands whose
positional arguments are data (`generate` PROMPTS, `human-eval import` SHEETS) read a positional
``key=value`` whose key is a field of their config as an override, anything else as data.

Flags that steer the invocation rather than describe the run are not config fields: ``--resume``,
``--seeds`` (one run per seed), ``--force``, ``--replace-prepared``. Exceptions, by design:
`run CONFIG` takes the study config as its positional argument (plus overrides); `report RUN_DIR`,
`prepare` and `ensemble show|export|push RUN_DIR` take only arguments and flags.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from moalign.core.config import load_config, parse_overrides

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")

CONFIG_HELP = "YAML file of this command's config (see `Command options` in the README)."

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help=CONFIG_HELP)]
"""The ``--config FILE.yaml`` option of every configurable command (``config: ConfigOption =
None``)."""

EnsembleArgument = Annotated[Path, typer.Argument(help="Run directory holding ensemble.json.")]
"""The ``RUN_DIR`` argument of the commands that use an existing ensemble."""
EnsembleOption = Annotated[Path | None, typer.Option(
    "--ensemble", "-e", help="Run directory holding ensemble.json.")]
"""``--ensemble RUN_DIR`` (``-e``): the ensemble a command decodes with."""


def shortcut(*param_decls: str, help: str) -> Any:
    """A typed flag that is a shortcut for one config field (step 3 above). Its default is None,
    which leaves the field alone, so a flag not given never overrides the config file."""
    return typer.Option(None, *param_decls, help=help)


def command_config(cls: type[D], config: Path | str | None, overrides: Iterable[str] | None,
                   **shortcuts: object) -> D:
    """`cls` from the YAML `config`, then the shortcut flags given (not None), then the
    `key=value` overrides; typed and validated by `load_config`."""
    values = {k: v for k, v in shortcuts.items() if v is not None}
    values.update(parse_overrides(overrides))
    return load_config(cls, config, values)


def split_overrides(args: Iterable[str] | None,
                    cls: type[DataclassInstance]) -> tuple[list[str], list[str]]:
    """Positional arguments -> (data, overrides): `KEY=VALUE` with KEY (before any dot) a field
    of `cls` is an override; everything else (a prompt, a file) is data."""
    fields = {f.name for f in dataclasses.fields(cls)}
    data: list[str] = []
    overrides: list[str] = []
    for arg in args or []:
        key, sep, _ = arg.partition("=")
        is_override = bool(sep) and key.strip().split(".")[0] in fields
        (overrides if is_override else data).append(arg)
    return data, overrides
