"""Typed config dataclasses: load from YAML, apply `key=value` overrides, validate, save resolved.

Every command has one dataclass (see the modules that own each command). This module holds the
generic machinery: type coercion from YAML/CLI strings, nested dataclasses, unknown-key errors that
list the valid keys, and saving the resolved config into a run directory.

Every YAML config is read by `load_yaml` / `parse_yaml`: PyYAML's safe loader (no `!!python` tags)
that also refuses duplicate keys; a syntax error, a tag or a file that is not UTF-8 is one
`ConfigError` naming the file and line. Fields with the same name in every config (`seed`,
`device`, `loggers`, `out_dir`, `weight_decay`, ...) are checked once here (`COMMON_FIELDS`).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
import re
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

import yaml

from moalign.core.errors import ConfigError
from moalign.core.io import atomic_write_text, read_utf8
from moalign.runs.layout import CONFIG_YAML

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
D = TypeVar("D", bound="DataclassInstance")


SET_BY = "moalign_set_by"
"""Field metadata key of `embed`: the embedded config's fields the enclosing config fills in."""


def embed(factory: Callable[[], T], set_by: Mapping[str, str]) -> T:
    """A field that holds another command's config inside this one (a study embeds its trainer's
    config, so every trainer default lives in one place).

    `set_by` maps each field of the embedded config that the enclosing config fills in for every
    unit it runs to a phrase saying where the value comes from; a file or override that sets one
    is an error, and `to_dict` leaves them out. Values may be one config or a `dict[str, config]`.
    Loading does not call the embedded config's `validate` (its filled-in fields are still
    placeholders): the enclosing config validates the unit configs it builds.
    """
    return dataclasses.field(default_factory=factory, metadata={SET_BY: dict(set_by)})


def _is_dataclass_type(tp: object) -> TypeGuard[type[DataclassInstance]]:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: object, tp: object, where: str) -> object:
    """Convert `value` (from YAML or a CLI string) to the annotated type `tp`."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, tp, where)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=f"{where}.")
    if origin in (list, tuple, dict):
        return _coerce_container(value, tp, where)
    if tp is bool:
        return _coerce_bool(value, where)
    if tp is int or tp is float:
        return _coerce_number(value, tp, where)
    if tp is str:
        if isinstance(value, dict | list):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _coerce_union(value: object, tp: object, where: str) -> object:
    """`X | Y | None`: None (or the text none/null) when allowed, else the first member that
    reads the value."""
    args = typing.get_args(tp)
    if type(None) in args and (value is None or (isinstance(value, str)
                                                 and value.lower() in ("none", "null"))):
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


def _coerce_container(value: object, tp: object, where: str) -> object:
    """`list[X]` / `tuple[X, ...]` (a CLI string is comma-separated) or `dict[K, V]` (a CLI
    string is `a=1,b=2`), items coerced one by one."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is dict:
        if isinstance(value, str):
            value = parse_mapping(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, where): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()] if value.strip() else []
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    item = args[0] if args else Any
    out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(out) if origin is tuple else out


def _coerce_bool(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{where}: expected true/false, got {value!r}")


def _coerce_number(value: object, tp: type[int] | type[float], where: str) -> int | float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if not isinstance(value, int | float | str):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    try:
        out = tp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
    if tp is int and isinstance(value, float) and value != out:
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return out


# ----------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only: no `!!python` tags) that also refuses a key given
    twice in one mapping, which PyYAML would silently resolve to the last value."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may repeat keys
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            seen = first_line.get(key)
        except TypeError:  # an unhashable key: the safe constructor words that error
            break
        if seen is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first given on line {seen}); keep one",
                key_node.start_mark)
        first_line[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                              _mapping_without_duplicates)


def _yaml_problem(e: yaml.YAMLError) -> tuple[str, str]:
    """(where, what) of a YAML error: ", line L, column C" and one phrase saying what is wrong."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = str(getattr(e, "problem", None) or e).strip()
    if "could not determine a constructor for the tag" in problem:
        found = re.search(r"tag '([^']*)'", problem)
        tag = (found.group(1) if found else "?").replace("tag:yaml.org,2002:", "!!")
        return where, (f"the tag {tag} is not allowed: a config holds plain YAML data "
                       "(mappings, lists, strings, numbers), never Python objects")
    if isinstance(e, yaml.constructor.ConstructorError):
        return where, problem
    context = getattr(e, "context", None)
    return where, f"YAML syntax error: {problem}" + (f" ({context})" if context else "")


def parse_yaml(text: str, source: str) -> Any:
    """YAML text as plain data (the strict safe loader); an error is one ConfigError naming
    `source` and the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as e:
        where, what = _yaml_problem(e)
        raise ConfigError(f"{source}{where}: {what}") from None


def load_yaml(path: str | Path) -> Any:
    """The plain data of a UTF-8 YAML file (see `parse_yaml`); the one YAML reader of configs."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {p} is a folder; pass a YAML file path")
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist; pass a YAML file path")
    return parse_yaml(read_utf8(p, ConfigError), str(p))


# ----------------------------------------------------------------------------- common fields

LOGGER_MODULES = {"jsonl": None, "tensorboard": "tensorboard", "wandb": "wandb",
                  "mlflow": "mlflow"}
DEVICE_NAME = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
SEED_LIMIT = 2**32  # numpy's seeds are 32-bit


def check_seed(value: object, where: str) -> None:
    if isinstance(value, int) and not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"{where} must be an integer in [0, 2**32 - 1], got {value}")


def _check_out_dir(value: object, where: str) -> None:
    if not isinstance(value, str | Path) or not str(value):
        return
    path = Path(value).expanduser()
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            inside = "" if p == path else f" (its parent {p} is a file)"
            raise ConfigError(f"{where} {str(path)!r} is not a folder{inside}; choose a folder "
                              "path for the run's outputs")


def _check_loggers(value: object, where: str) -> None:
    for name in value if isinstance(value, list) else []:
        if name not in LOGGER_MODULES:
            raise ConfigError(f"{where}: unknown logger {name!r}; choose from "
                              f"{sorted(LOGGER_MODULES)} (metrics.jsonl is always written)")
        module = LOGGER_MODULES[name]
        if module is not None and importlib.util.find_spec(module) is None:
            raise ConfigError(f"{where}: the {name} logger needs `pip install {module}` (or "
                              "moalign[logging]); install it or remove it from loggers")


def _check_number(value: object, where: str) -> None:
    if isinstance(value, int | float) and not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{where} must be a finite number >= 0, got {value}")


def _check_device(value: object, where: str) -> None:
    if isinstance(value, str) and not DEVICE_NAME.fullmatch(value):
        raise ConfigError(f"{where}: {value!r} is not a device; use auto, cpu, cuda, cuda:<n> "
                          "or mps")


def _check_seeds(value: object, where: str) -> None:
    for i, seed in enumerate(value if isinstance(value, list) else []):
        check_seed(seed, f"{where}[{i}]")


COMMON_FIELDS: dict[str, Callable[[object, str], None]] = {
    "seed": check_seed, "seeds": _check_seeds, "training_seeds": _check_seeds,
    "weight_decay": _check_number, "device": _check_device, "loggers": _check_loggers,
    "out_dir": _check_out_dir,
}
"""A field of one of these names means the same in every config, so it is checked here once
for all of them (by `from_dict`), before anything is loaded."""


def check_common_fields(obj: object, prefix: str = "") -> None:
    for name, check in COMMON_FIELDS.items():
        if hasattr(obj, name):
            check(getattr(obj, name), prefix + name)


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
        out[key] = value.strip() if raw else parse_yaml(value, f"{what} {item!r}".lstrip())
    return out


def parse_mapping(text: str) -> dict[str, Any]:
    """One CLI value `a=0.8,b=0.5` -> {"a": 0.8, "b": 0.5} (values are YAML scalars)."""
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    return parse_pairs(parts, "name=value, pairs separated by commas")


def parse_overrides(items: Iterable[str] | None) -> dict[str, Any]:
    """CLI overrides `a.b=value ...` -> {"a.b": YAML value}; a later repeat of a key wins."""
    return parse_pairs(items or [], "key=value (e.g. max_steps=40)", "override")


RENAMED = "RENAMED"
"""Class attribute of a config dataclass: {old key: new key} of renamed fields; a file or override
with the old key still loads, with a FutureWarning (old run directories keep loading)."""


def _renamed_keys(cls: type, data: Mapping[str, object], prefix: str) -> Mapping[str, object]:
    """`data` with deprecated keys (`cls.RENAMED`) replaced by their new names."""
    renamed: Mapping[str, str] = getattr(cls, RENAMED, {})
    old_keys = [k for k in data if k in renamed]
    if not old_keys:
        return data
    out = dict(data)
    for old in old_keys:
        new = renamed[old]
        if new in data:
            raise ConfigError(f"{prefix}{old} is the old name of {prefix}{new}; give only "
                              f"{prefix}{new}")
        warnings.warn(f"config key {prefix}{old!r} is deprecated; use {prefix}{new!r} (same "
                      "meaning)", FutureWarning, stacklevel=4)
        out[new] = out.pop(old)
    return out


def from_dict(cls: type[D], data: Mapping[str, object], prefix: str = "",
              validate: bool = True) -> D:
    """Build dataclass `cls` from a mapping; unknown keys are an error suggesting the closest
    valid key and listing them all; a deprecated key name (`cls.RENAMED`) still loads."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    data = _renamed_keys(cls, data, prefix)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(fields), n=1)
        hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown config key(s) {[prefix + k for k in unknown]} for {cls.__name__}{hint}; "
            f"valid keys: {sorted(fields)}"
        )
    kwargs: dict[str, object] = {}
    for k, v in data.items():
        set_by = fields[k].metadata.get(SET_BY)
        kwargs[k] = (_coerce(v, hints[k], prefix + k) if set_by is None
                     else _embedded(v, hints[k], prefix + k, set_by))
    obj = cls(**kwargs)
    check_common_fields(obj, prefix)
    check = getattr(obj, "validate", None)
    if validate and callable(check):
        check()
    return obj


def fill(cfg: D, set_by: Mapping[str, str], **values: object) -> D:
    """A copy of an `embed` config with every field its enclosing config sets filled in (all of
    `set_by`, nothing else: one place decides what the enclosing config owns)."""
    if set(values) != set(set_by):
        raise TypeError(f"fill {type(cfg).__name__}: give exactly {sorted(set_by)}, got "
                        f"{sorted(values)}")
    return dataclasses.replace(cfg, **values)


def _embedded(value: object, tp: object, where: str, set_by: Mapping[str, str]) -> object:
    """An `embed` field (one config or a `dict[str, config]`): refuse the keys its enclosing
    config sets; build it without `validate` (its set-by fields are still placeholders)."""
    if typing.get_origin(tp) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of names to settings, got {value!r}")
        item = typing.get_args(tp)[1]
        return {str(k): _embedded(v, item, f"{where}.{k}", set_by) for k, v in value.items()}
    if not _is_dataclass_type(tp):
        raise TypeError(f"{where}: an embedded config must be a dataclass, not {tp}")
    if isinstance(value, tp):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
    owned = sorted(set(value) & set(set_by))
    if owned:
        raise ConfigError(f"{where}.{owned[0]} cannot be set here: {set_by[owned[0]]}; "
                          "remove it")
    return from_dict(tp, value, prefix=f"{where}.", validate=False)


def _set_dotted(data: dict[str, object], key: str, value: object) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: {p!r} is not a section")
        node = child
    node[parts[-1]] = value


def load_config(
    cls: type[D],
    path: str | Path | None = None,
    overrides: Iterable[str] | Mapping[str, object] | None = None,
) -> D:
    """Load `cls` from an optional YAML file, then apply overrides on top.

    `overrides` are `a.b=value` strings (see `parse_overrides`) or a {dotted key: value} dict.
    """
    data: dict[str, object] = {}
    if path is not None:
        p = Path(path)
        loaded = load_yaml(p)
        loaded = {} if loaded is None else loaded  # an empty file: the defaults
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a YAML mapping at the top level")
        data = loaded
    values = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
    for k, v in values.items():  # None (YAML null) sets the key to null
        _set_dotted(data, k.strip(), v)
    return from_dict(cls, data)


def to_dict(cfg: DataclassInstance) -> dict[str, Any]:
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


def save_config(cfg: DataclassInstance, run_dir: str | Path, name: str = CONFIG_YAML) -> Path:
    """Save the resolved config into the run directory (atomically)."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    return atomic_write_text(Path(run_dir) / name, text)


def require(cond: bool, message: str) -> None:
    """Raise ConfigError(message) when `cond` is false; used by config `validate()` methods."""
    if not cond:
        raise ConfigError(message)


def require_each(cfg: object, names: Iterable[str], ok: Callable[[Any], bool], rule: str) -> None:
    """`require(ok(cfg.<name>))` for every field name; the error reads `<name> must be <rule>,
    got <value>` (e.g. rule ">= 1" or "a finite number > 0")."""
    for name in names:
        value = getattr(cfg, name)
        require(ok(value), f"{name} must be {rule}, got {value}")
