"""Typed config dataclasses: load from YAML, apply `key=value` overrides, validate, save resolved.

Every command has one dataclass (see the modules that own each command). This module holds the
generic machinery: type coercion from YAML/CLI strings, nested dataclasses, unknown-key errors that
list the valid keys, and saving the resolved config into a run directory.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from moalign.core.io import atomic_write_text
from moalign.runs.layout import CONFIG_YAML

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
D = TypeVar("D", bound="DataclassInstance")


class ConfigError(ValueError):
    """A config value is missing, unknown or invalid; the message says how to fix it."""


SET_BY = "moalign_set_by"
"""Field metadata key of `embed`: the embedded config's fields the enclosing config fills in."""


def embed(factory: Callable[[], Any], set_by: Mapping[str, str]) -> Any:
    """A field that holds another command's config inside this one (a study embeds its trainer's
    config, so every trainer default lives in one place).

    `set_by` maps each field of the embedded config that the enclosing config fills in for every
    unit it runs to a phrase saying where the value comes from; a file or override that sets one
    is an error, and `to_dict` leaves them out. Values may be one config or a `dict[str, config]`.
    Loading does not call the embedded config's `validate` (its filled-in fields are still
    placeholders): the enclosing config validates the unit configs it builds.
    """
    return dataclasses.field(default_factory=factory, metadata={SET_BY: dict(set_by)})


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert `value` (from YAML or a CLI string) to the annotated type `tp`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except (ConfigError, TypeError, ValueError) as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: cannot read {value!r} as {tp}: {'; '.join(errors)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=f"{where}.")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if isinstance(value, str):
            value = parse_mapping(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, where): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            out = tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
        if tp is int and isinstance(value, float) and value != out:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return out
    if tp is str:
        if isinstance(value, dict | list):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def parse_pairs(items: Iterable[str], form: str = "key=value", what: str = "", *,
                raw: bool = False, unique: bool = False) -> dict[str, Any]:
    """The one `key=value` parser: each item splits at its first `=`, keys are stripped.

    Values are read as YAML (`3` -> 3, `null` -> None, `[a,b]` -> a list) unless `raw` keeps
    the stripped text (paths, model ids; then an empty value is an error too). A repeated key
    replaces the earlier value, or is an error with `unique`. `form` and `what` word the error,
    e.g. ``--expert 'x' must look like name=PATH``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or (raw and not value.strip()):
            raise ConfigError(f"{what} {item!r} must look like {form}".lstrip())
        if unique and key in out:
            raise ConfigError(f"{what} {key!r} is given twice".lstrip())
        out[key] = value.strip() if raw else yaml.safe_load(value)
    return out


def parse_mapping(text: str) -> dict[str, Any]:
    """One CLI value `a=0.8,b=0.5` -> {"a": 0.8, "b": 0.5} (values are YAML scalars)."""
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    return parse_pairs(parts, "name=value, pairs separated by commas")


def parse_overrides(items: Iterable[str] | None) -> dict[str, Any]:
    """CLI overrides `a.b=value ...` -> {"a.b": YAML value}; a later repeat of a key wins."""
    return parse_pairs(items or [], "key=value (e.g. max_steps=40)", "override")


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "",
              validate: bool = True) -> T:
    """Build dataclass `cls` from a mapping; unknown keys are an error listing the valid ones."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {[prefix + k for k in unknown]} for {cls.__name__}; "
            f"valid keys: {sorted(fields)}"
        )
    kwargs = {}
    for k, v in data.items():
        set_by = fields[k].metadata.get(SET_BY)
        kwargs[k] = (_coerce(v, hints[k], prefix + k) if set_by is None
                     else _embedded(v, hints[k], prefix + k, set_by))
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if validate and callable(check):
        check()
    return obj


def fill(cfg: D, set_by: Mapping[str, str], **values: Any) -> D:
    """A copy of an `embed` config with every field its enclosing config sets filled in (all of
    `set_by`, nothing else: one place decides what the enclosing config owns)."""
    if set(values) != set(set_by):
        raise TypeError(f"fill {type(cfg).__name__}: give exactly {sorted(set_by)}, got "
                        f"{sorted(values)}")
    return dataclasses.replace(cfg, **values)


def _embedded(value: Any, tp: Any, where: str, set_by: dict[str, str]) -> Any:
    """An `embed` field (one config or a `dict[str, config]`): refuse the keys its enclosing
    config sets; build it without `validate` (its set-by fields are still placeholders)."""
    if typing.get_origin(tp) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of names to settings, got {value!r}")
        item = typing.get_args(tp)[1]
        return {str(k): _embedded(v, item, f"{where}.{k}", set_by) for k, v in value.items()}
    if isinstance(value, tp):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
    owned = sorted(set(value) & set(set_by))
    if owned:
        raise ConfigError(f"{where}.{owned[0]} cannot be set here: {set_by[owned[0]]}; "
                          "remove it")
    return from_dict(tp, value, prefix=f"{where}.", validate=False)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {p!r} is not a section")
    node[parts[-1]] = value


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> T:
    """Load `cls` from an optional YAML file, then apply overrides on top.

    `overrides` are `a.b=value` strings (see `parse_overrides`) or a {dotted key: value} dict.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist; pass a YAML file path")
        loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a YAML mapping at the top level")
        data = loaded
    values = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    for k, v in values.items():  # None (YAML null) sets the key to null
        _set_dotted(data, k.strip(), v)
    return from_dict(cls, data)


def to_dict(cfg: Any) -> dict[str, Any]:
    """`cfg` as plain data; the fields of an `embed` config its enclosing config sets are left
    out (so a saved study config loads again as it is)."""
    out = dataclasses.asdict(cfg)
    for f in dataclasses.fields(cfg):
        set_by = f.metadata.get(SET_BY)
        if set_by is None:
            continue
        value = out[f.name]
        items = value.values() if isinstance(getattr(cfg, f.name), dict) else [value]
        for item in items:
            for key in set_by:
                item.pop(key, None)
    return out


def save_config(cfg: Any, run_dir: str | Path, name: str = CONFIG_YAML) -> Path:
    """Save the resolved config into the run directory (atomically)."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    return atomic_write_text(Path(run_dir) / name, text)


def require(cond: bool, message: str) -> None:
    """Raise ConfigError(message) when `cond` is false; used by config `validate()` methods."""
    if not cond:
        raise ConfigError(message)
