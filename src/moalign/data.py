"""Data loading (EMORL §5.2, MOLMA §4.1): tables with column mapping, PAIR, Psych8k, preference
pairs, prompt mixes and the embedded datasets that ship inside the package.

Every loader returns plain Python records (`list[dict]`), so any later stage can use them without
pandas or `datasets`. Besides files, a source may be a `datasets` hub id or a local dataset
folder, read with ``datasets.load_dataset`` (``config`` and ``split`` pick the subset).

Column mapping is always `{our_name: file_column}`; e.g. a CSV whose client
statement column is called `text` is read as prompts with `columns={"prompt": "text"}` (in a YAML
config: `columns: {prompt: text}`; on the command line: `columns.prompt=text`).
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import datasets
import pandas as pd
import yaml

from moalign.core.config import ConfigError
from moalign.core.errors import DataError
from moalign.core.io import read_utf8

Record = dict[str, Any]
"""One row of a table: column name -> value (JSON / CSV / Parquet values, any type)."""
T = TypeVar("T")


class Prompt(str):
    """A prompt text that carries the other columns of its dataset row (`columns`), so reward
    functions get them as TRL passes them (`moalign.rewards.functions`). Everywhere else it is
    the plain string (equal to it, same hash, JSON/YAML as a string)."""

    columns: dict[str, Any]

    def __new__(cls, text: str, columns: dict[str, Any] | None = None) -> Prompt:
        obj = super().__new__(cls, text)
        obj.columns = dict(columns or {})
        return obj

    def __reduce__(self) -> tuple[Any, ...]:  # pickling (Ray workers) keeps the columns
        return (Prompt, (str(self), self.columns))


yaml.SafeDumper.add_representer(Prompt, lambda dumper, p: dumper.represent_str(str(p)))

EMBEDDED_DATA_DIR = Path(__file__).parent / "embedded" / "data"
FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "hf", "hub", "txt")
_SUFFIX_FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet", ".pq": "parquet", ".txt": "txt",
}
SPLITS = ("train", "val", "test")


# ----------------------------------------------------------------------------- tables


def detect_format(path: Path) -> str:
    """The table format of `path` from its suffix; a folder is a `datasets.save_to_disk` dataset."""
    if path.is_dir():
        return "hf"
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"cannot tell the format of {path} from its suffix {path.suffix!r}; rename it or "
            f"pass fmt= one of {list(FORMATS)} (config key `format`)"
        )
    return fmt


def _read_json(path: Path) -> list[Record]:
    text = read_utf8(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return _read_jsonl(path)  # many ".json" files are really JSON lines
    if isinstance(obj, dict):
        for key in ("data", "rows", "records", "train"):
            if isinstance(obj.get(key), list):
                return obj[key]
        if obj and all(isinstance(v, list) for v in obj.values()):  # column-oriented
            n = len(next(iter(obj.values())))
            return [{k: v[i] for k, v in obj.items()} for i in range(n)]
        return [obj]
    if not isinstance(obj, list):
        raise DataError(f"{path}: expected a JSON list of objects, got {type(obj).__name__}")
    return obj


def _read_jsonl(path: Path) -> list[Record]:
    out = []
    for i, line in enumerate(read_utf8(path).splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {i + 1} is not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {i + 1} holds a JSON {type(row).__name__}; each line "
                            'must be an object such as {"prompt": "..."}')
        out.append(row)
    return out


def _read_pandas(path: Path, fmt: str, header: bool) -> list[Record]:
    if fmt == "parquet":
        df = pd.read_parquet(path)
    else:
        read_utf8(path)  # bytes that are not UTF-8: an error naming the line, not pandas'
        df = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", header=0 if header else None,
                         keep_default_na=False, na_values=[""])
        if not header:
            df.columns = [str(c) for c in df.columns]
    return df.astype(object).where(pd.notna(df), None).to_dict(orient="records")


def _pick_split(ds: datasets.Dataset | datasets.DatasetDict, source: str,
                split: str | None) -> list[Record]:
    """Rows of one split of a `DatasetDict` (default `train`, else the first)."""
    if isinstance(ds, datasets.DatasetDict):
        names = list(ds.keys())
        split = split or ("train" if "train" in ds else names[0])
        if split not in ds:
            raise DataError(f"{source} has splits {names}; pick one with split=<name>")
        ds = ds[split]
    return list(ds.to_list())


def is_saved_dataset(path: Path) -> bool:
    """A folder written by `datasets.save_to_disk` (a Dataset or a DatasetDict)."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _read_hf(path: Path, split: str | None) -> list[Record]:
    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError as e:
        raise DataError(f"{path} is not a dataset saved with `save_to_disk`: {e}") from None
    return _pick_split(ds, str(path), split)


def looks_like_hub_id(spec: str) -> bool:
    """`owner/name` (a `datasets` hub id), not a relative file path with a suffix."""
    return (re.fullmatch(r"[\w.-]+/[\w.-]+", spec) is not None
            and Path(spec).suffix.lower() not in _SUFFIX_FORMATS)


def load_hub_dataset(source: str, config: str | None = None,
                     split: str | None = None) -> list[Record]:
    """Rows of a `datasets` hub id or a local dataset folder (data files, or a README that
    declares configs), through ``datasets.load_dataset(source, config, split=split)``."""
    try:
        ds = datasets.load_dataset(source, config, split=split)
    except (OSError, ValueError, ImportError) as e:  # not found, offline, unknown config/split
        raise DataError(f"cannot load dataset {source!r} (config={config!r}, split={split!r}) "
                        f"with datasets.load_dataset: {type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}. Offline? Use a local file "
                        "or folder") from None
    return _pick_split(ds, source, split)


def read_records(
    path: str | Path, fmt: str | None = None, split: str | None = None, header: bool = True,
    config: str | None = None,
) -> list[Record]:
    """Read every row of a table file, a `save_to_disk` folder, a local dataset folder or a
    `datasets` hub id (`config`, `split`) as records, without column mapping or checks."""
    spec, path = str(path), Path(path).expanduser()
    if fmt == "hub" or (not path.exists() and fmt is None and looks_like_hub_id(spec)):
        return load_hub_dataset(spec, config, split)
    if not path.exists():
        raise DataError(f"data file {path} does not exist; check the path (relative paths are "
                        f"resolved from {Path.cwd()}); a datasets hub id looks like owner/name")
    if path.is_dir() and fmt in (None, "hf") and not is_saved_dataset(path):
        return load_hub_dataset(str(path), config, split)  # data files (+ README configs)
    fmt = fmt or detect_format(path)
    if fmt == "jsonl":
        return _read_jsonl(path)
    if fmt == "json":
        return _read_json(path)
    if fmt in ("csv", "tsv", "parquet"):
        return _read_pandas(path, fmt, header)
    if fmt == "hf":
        return _read_hf(path, split)
    if fmt == "txt":
        lines = read_utf8(path).splitlines()
        return [{"prompt": line.strip()} for line in lines if line.strip()]
    raise DataError(f"unknown data format {fmt!r} for {path}; choose one of {list(FORMATS)}")


def map_columns(
    records: list[Record], columns: dict[str, str] | None, source: str = "data"
) -> list[Record]:
    """Rename file columns to our names (`{our_name: file_column}`); missing ones are a DataError.

    Unmapped columns pass through unchanged.
    """
    if not columns:
        return records
    available = list(records[0].keys()) if records else []
    for ours, theirs in columns.items():
        for i, rec in enumerate(records):
            if theirs not in rec:
                where = "" if i == 0 else f" (row {i})"
                raise DataError(
                    f"{source} has no column {theirs!r}{where} (needed as {ours!r}); available "
                    f"columns: {available}. Map one with columns={{{ours!r}: '<column>'}} "
                    f"(config: `columns: {{{ours}: <column>}}`, CLI: columns.{ours}=<column>)"
                )
    sources = set(columns.values())
    out = []
    for rec in records:
        new = {k: v for k, v in rec.items() if k not in sources}
        new.update({ours: rec[theirs] for ours, theirs in columns.items()})
        out.append(new)
    return out


def load_table(
    path: str | Path, columns: dict[str, str] | None = None, fmt: str | None = None,
    split: str | None = None, config: str | None = None,
) -> list[Record]:
    """Load a JSONL/JSON/CSV/TSV/Parquet file, a `save_to_disk` folder, a local dataset folder
    or a `datasets` hub id (with `config`) as records.

    `columns` maps our names to the file's columns and requires them: `{"prompt": "text"}` yields
    records with a `prompt` key taken from the file's `text` column. `split` picks a split of a
    saved `DatasetDict` (default `train`). Missing file, unknown format, missing column or empty
    data raise DataError with a message saying how to fix it.
    """
    records = read_records(path, fmt=fmt, split=split, config=config)
    if not records:
        raise DataError(f"{path} holds no rows; point the config at a non-empty data file")
    if not all(isinstance(r, dict) for r in records):
        raise DataError(f"{path}: every row must be an object with named columns")
    return map_columns(records, columns, source=str(path))


def column(records: list[Record], name: str, source: str = "data") -> list[object]:
    """The values of one column; a missing column is a DataError listing the available ones."""
    return [r[name] for r in map_columns(records, {name: name}, source)]


# ----------------------------------------------------------------------------- splits and mixes


def _split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ConfigError(f"split fractions {list(fractions)} must be >= 0 and sum to 1")
    bounds, acc = [0], 0.0
    for f in fractions:
        acc += f
        bounds.append(round(acc * n))
    bounds[-1] = n
    return [b - a for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def deterministic_split(
    records: Sequence[T], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[list[T], ...]:
    """Shuffle with `seed` and cut into len(fractions) parts (same input + seed -> same parts)."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    parts, start = [], 0
    for size in _split_sizes(len(records), fractions):
        parts.append([records[i] for i in order[start:start + size]])
        start += size
    return tuple(parts)


def _largest_remainder(n: int, weights: Sequence[float]) -> list[int]:
    total = sum(weights)
    raw = [n * w / total for w in weights]
    counts = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def mix_prompts(sources: Sequence[tuple[Sequence[T], float]], n: int, seed: int = 0) -> list[T]:
    """Draw `n` items from several sources in the given proportions, shuffled (MOLMA: 60/40).

    Counts use largest-remainder rounding so they sum to `n`; a source is sampled without
    replacement while it lasts and then cycled (reshuffled) if it is smaller than its share.
    """
    if not sources:
        raise ConfigError("mix_prompts needs at least one (items, proportion) source")
    weights = [float(p) for _, p in sources]
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"mix proportions {weights} must be >= 0 with a positive sum")
    rng = random.Random(seed)
    out: list[T] = []
    for (items, _), count in zip(sources, _largest_remainder(n, weights), strict=True):
        if count and not items:
            raise DataError("a prompt source in the mix is empty; drop it or give it weight 0")
        pool: list[T] = []
        while len(pool) < count:
            batch = list(items)
            rng.shuffle(batch)
            pool.extend(batch)
        out.extend(pool[:count])
    rng.shuffle(out)
    return out


# ----------------------------------------------------------------------------- known formats


def load_pair(path: str | Path, seed: int = 0) -> dict[str, list[Record]]:
    """PAIR `pair_data.csv` (no header: prompt, high, medium, low reflections) -> 80/10/10 splits.

    Records: `prompt`, `reference_high`, `reference_medium`, `reference_low`, and `reference`
    (= the high-quality reflection). Returns `{"train", "val", "test"}`.
    """
    rows = read_records(path, fmt="csv", header=False)
    if not rows:
        raise DataError(f"{path} holds no rows; PAIR needs prompt,high,medium,low lines")
    if len(rows[0]) < 4:
        raise DataError(f"{path}: PAIR rows need 4 columns (prompt, high, medium, low "
                        f"reflection), found {len(rows[0])}")
    records = []
    for row in rows:
        p, hi, mid, lo = (row[str(i)] for i in range(4))
        if p is None:
            continue
        records.append({"prompt": str(p), "reference": hi, "reference_high": hi,
                        "reference_medium": mid, "reference_low": lo})
    train, val, test = deterministic_split(records, (0.8, 0.1, 0.1), seed)
    return {"train": train, "val": val, "test": test}


def load_psych8k(path: str | Path) -> list[Record]:
    """Psych8k (JSON list: `instruction`, `input`, `output`): prompt = input, reference = output."""
    rows = load_table(path, columns={"instruction": "instruction", "input": "input",
                                     "output": "output"})
    return [{"prompt": r["input"], "reference": r["output"], "instruction": r["instruction"]}
            for r in rows if r["input"]]


_HH_ASSISTANT = "\n\nAssistant:"
_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def split_hh_transcript(text: str) -> tuple[str, str]:
    """Split an HH-RLHF transcript into (prompt, final assistant response).

    A single-turn prompt is returned as plain text; a multi-turn one keeps its transcript form
    (`Human: ...\\n\\nAssistant: ...\\n\\nHuman: ...`).
    """
    cut = text.rfind(_HH_ASSISTANT)
    if cut < 0:
        raise DataError(f"not an HH-RLHF transcript (no {_HH_ASSISTANT.strip()!r} turn): "
                        f"{text[:80]!r}")
    history, response = text[:cut], text[cut + len(_HH_ASSISTANT):].strip()
    turns = _HH_TURN.findall("\n\n" + history.lstrip("\n"))
    prompt = history.strip()
    if len(turns) == 1 and prompt.startswith("Human:"):
        prompt = prompt[len("Human:"):].strip()
    return prompt, response


def hh_to_pair(rec: Record) -> Record:
    """HH-RLHF row (`chosen`, `rejected` full transcripts) -> prompt/chosen/rejected."""
    prompt, chosen = split_hh_transcript(rec["chosen"])
    _, rejected = split_hh_transcript(rec["rejected"])
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def pku_to_pair(rec: Record, label: str = "safer_response_id") -> Record:
    """PKU-SafeRLHF row -> prompt/chosen/rejected by `safer_response_id` or `better_response_id`."""
    if label not in rec:
        raise DataError(f"PKU-SafeRLHF row has no {label!r}; use safer_response_id or "
                        f"better_response_id (available: {list(rec)})")
    best = int(rec[label])
    return {"prompt": rec["prompt"], "chosen": rec[f"response_{best}"],
            "rejected": rec[f"response_{1 - best}"]}


def shp_to_pair(rec: Record) -> Record:
    """SHP row (`history`, `human_ref_A`, `human_ref_B`, `labels` = 1 if A is preferred)."""
    a_wins = int(rec["labels"]) == 1
    a, b = rec["human_ref_A"], rec["human_ref_B"]
    return {"prompt": rec["history"], "chosen": a if a_wins else b,
            "rejected": b if a_wins else a}


PREFERENCE_STYLES: dict[str, Callable[[Record], Record]] = {
    "hh": hh_to_pair, "pku": pku_to_pair,
    "pku_better": lambda r: pku_to_pair(r, "better_response_id"), "shp": shp_to_pair,
}


def detect_preference_style(rec: Record) -> str:
    """`plain` (prompt/chosen/rejected), `hh`, `pku` or `shp` from a row's columns."""
    if {"prompt", "chosen", "rejected"} <= rec.keys():
        return "plain"
    if {"chosen", "rejected"} <= rec.keys():
        return "hh"
    if {"response_0", "response_1"} <= rec.keys():
        return "pku"
    if {"human_ref_A", "human_ref_B", "labels"} <= rec.keys():
        return "shp"
    raise DataError(
        f"cannot read preference pairs from columns {list(rec)}; map them with "
        "columns={'prompt': ..., 'chosen': ..., 'rejected': ...} or pass style= one of "
        f"{['plain', *PREFERENCE_STYLES]}"
    )


def load_preferences(
    path: str | Path, columns: dict[str, str] | None = None, style: str = "auto",
    fmt: str | None = None, split: str | None = None,
) -> list[Record]:
    """Preference pairs as records with `prompt`, `chosen`, `rejected`.

    `style`: `auto` (detect from the columns), `plain`, `hh` (HH-RLHF transcripts), `pku`
    (PKU-SafeRLHF, safer response), `pku_better` (PKU-SafeRLHF, better response), `shp`.
    `columns` maps our names to the file's before the style mapper runs.
    """
    rows = load_table(path, columns=columns, fmt=fmt, split=split)
    style = detect_preference_style(rows[0]) if style == "auto" else style
    if style == "plain":
        return map_columns(rows, {k: k for k in ("prompt", "chosen", "rejected")}, str(path))
    if style not in PREFERENCE_STYLES:
        raise DataError(f"unknown preference style {style!r}; choose auto, plain or one of "
                        f"{list(PREFERENCE_STYLES)}")
    out = []
    for i, r in enumerate(rows):
        try:
            out.append(PREFERENCE_STYLES[style](r))
        except KeyError as e:
            raise DataError(f"{path} row {i}: {style} preference rows need column {e}; "
                            f"available: {list(r)}") from None
    return out


# ----------------------------------------------------------------------------- embedded data


def embedded_names() -> list[str]:
    """Names of the datasets shipped in `moalign/embedded/data` (file stems)."""
    return sorted(p.stem for p in EMBEDDED_DATA_DIR.glob("*.jsonl"))


def embedded_path(name: str) -> Path:
    """Path of an embedded dataset: `counsel_train`, `reflection_labels`, `help_prefs`, ..."""
    stem = name[: -len(".jsonl")] if name.endswith(".jsonl") else name
    path = EMBEDDED_DATA_DIR / f"{stem}.jsonl"
    if not path.is_file():
        raise DataError(f"no embedded dataset {name!r}; available: {embedded_names()} "
                        "(or pass a path to your own file)")
    return path


def load_embedded(name: str) -> list[Record]:
    """Records of an embedded dataset (see `embedded_names()`)."""
    return load_table(embedded_path(name))


def counsel_prompts(split: str = "train") -> list[str]:
    """The embedded counselling client statements of one split (`train`, `val`, `test`)."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    return [str(p) for p in column(load_embedded(f"counsel_{split}"), "prompt")]


def resolve_data(spec: str | Path) -> Path:
    """A data argument that is an embedded dataset name, a file path or a hub id (`owner/name`,
    kept as it is), as a path."""
    path = Path(spec).expanduser()
    if path.exists() or path.suffix or "/" in str(spec):
        return path if path.exists() or not looks_like_hub_id(str(spec)) else Path(str(spec))
    return embedded_path(str(spec))


def _prompts_from_dict(spec: dict[str, Any]) -> list[Record]:
    spec = dict(spec)
    fmt = spec.pop("format", None)
    source = spec.pop("path", None) or spec.pop("name", None)
    if source is None:
        raise ConfigError(f"prompt source {spec} needs `path` (a file) or `name` (embedded)")
    if fmt == "pair":
        return load_pair(source, seed=spec.get("seed", 0))[spec.get("split", "train")]
    if fmt == "psych8k":
        return load_psych8k(source)
    return load_table(resolve_data(source), columns=spec.get("columns"), fmt=fmt,
                      split=spec.get("split"), config=spec.get("config"))


def check_prompts(values: Sequence[Any], source: str) -> None:
    """Every prompt is non-empty text; null, a number, a list or a blank string is a DataError
    naming the prompt (never trained on as the text "None", "5" or "['a']")."""
    for i, v in enumerate(values):
        if v is None or (isinstance(v, str) and not v.strip()):
            raise DataError(f"{source}: prompt {i + 1} is empty; fill it in or drop that row")
        if not isinstance(v, str):
            raise DataError(f"{source}: prompt {i + 1} is {v!r}, a {type(v).__name__}, not "
                            "text; every prompt must be a non-empty string")


def load_prompts(spec: str | Path | Sequence[str] | dict[str, Any]) -> list[str]:
    """Prompts from a list of strings, an embedded name, a table path, or a dict source.

    Dict keys: `path` or `name`, optional `format` (any table format, `hub`, `pair`,
    `psych8k`), `column` (default `prompt`), `columns` mapping, `split`, `config` (a dataset's
    configuration), `where` ({column: value} filter) and `limit`. Examples: `"counsel_train"`,
    `"data/clients.csv"`, `"owner/dataset"` (hub), `{"name": "help_safety_prompts", "where":
    {"kind": "safety"}}`, `{"path": "pair_data.csv", "format": "pair", "split": "val"}`,
    `{"path": "owner/dataset", "config": "main", "split": "test", "column": "question"}`.

    A row's other columns travel with its prompt (`Prompt.columns`) to reward functions.
    """
    if isinstance(spec, list | tuple):
        check_prompts(spec, "the prompt list")
        return [str(s) for s in spec]
    opts: dict[str, Any] = dict(spec) if isinstance(spec, dict) else {"path": str(spec)}
    col, where = opts.pop("column", "prompt"), opts.pop("where", None)
    limit = opts.pop("limit", None)
    records = _prompts_from_dict(opts)
    for key, value in (where or {}).items():
        records = [r for r in records if r.get(key) == value]
    source = str(opts.get("path") or opts.get("name"))
    texts = column(records, col, source)
    check_prompts(texts, f"{source} (column {col!r})")
    prompts: list[str] = [
        Prompt(str(v), extra) if (extra := {k: x for k, x in r.items() if k != col}) else str(v)
        for v, r in zip(texts, records, strict=True)]
    prompts = prompts[:limit] if limit is not None else prompts
    if not prompts:
        raise DataError(f"prompt source {spec} yields no prompts (check `where` / `limit`)")
    return prompts
