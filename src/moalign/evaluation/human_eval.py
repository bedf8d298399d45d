"""Human evaluation (EMORL §5.3, Appendix 11.3, Table 2 "Human"): blinded rating sheets, import.

`export_sheet` writes one CSV row per (prompt, response): the responses of several systems to the
same prompt appear together, in a random order per prompt, under anonymous ids; one empty column
per objective takes a 0 / 1 / 2 rating. The id -> system map goes to a separate *private* key file
that must not be shown to raters.

`import_ratings` reads one filled sheet per rater, checks every value, maps ratings 0..2 to scores
0..1 (score = rating / 2), averages them per system and objective (EMORL reports these normalised
human scores), and measures agreement between raters per objective:

* percent agreement: mean over items of the fraction of rater pairs giving the same rating;
* Cohen's kappa: (p_o − p_e) / (1 − p_e) for each pair of raters (their mean when more than two);
* Fleiss' kappa: (P̄ − P̄_e) / (1 − P̄_e) with P̄_e = Σ_c p_c² over the pooled category shares.

A kappa is `None` when it is undefined (every rating in the same category, so p_e = 1).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from moalign.core.errors import DataError
from moalign.core.io import atomic_write_json, atomic_write_text

RATINGS = (0, 1, 2)
BASE_COLUMNS = ("item", "prompt", "response_id", "response")


def default_key_path(out_csv: str | Path) -> Path:
    out = Path(out_csv)
    return out.with_name(f"{out.stem}.key.json")


def _check_generations(generations: Mapping[str, Sequence[tuple[str, str]]]) -> list[str]:
    """The shared prompt list; every system must answer the same prompts in the same order."""
    if len(generations) < 1:
        raise DataError("export_sheet needs the generations of at least one system")
    systems = list(generations)
    prompts = [p for p, _ in generations[systems[0]]]
    if not prompts:
        raise DataError(f"system {systems[0]!r} has no generations")
    for name in systems[1:]:
        other = [p for p, _ in generations[name]]
        if other != prompts:
            raise DataError(f"system {name!r} answers different prompts than {systems[0]!r}; "
                            "every system must answer the same prompts in the same order")
    return prompts


def _anonymous_ids(n: int) -> list[str]:
    letters = string.ascii_uppercase
    return [letters[i] if i < 26 else f"{letters[i // 26 - 1]}{letters[i % 26]}"
            for i in range(n)]


def export_sheet(generations: Mapping[str, Sequence[tuple[str, str]]], objectives: Sequence[str],
                 out_csv: str | Path, seed: int = 0,
                 key_path: str | Path | None = None) -> tuple[Path, Path]:
    """Write a blinded rating sheet (CSV) and its private key (JSON); return both paths.

    Rows: `item` (1-based prompt number), `prompt`, `response_id` (e.g. `3-B`: item 3, slot B;
    slots are shuffled per item with `random.Random(seed)`), `response`, then one empty column per
    objective for a 0/1/2 rating.
    """
    objectives = list(objectives)
    if not objectives:
        raise DataError("export_sheet needs at least one objective column")
    clash = sorted(set(objectives) & set(BASE_COLUMNS))
    if clash:
        raise DataError(f"objective name(s) {clash} clash with the sheet's own columns")
    prompts = _check_generations(generations)
    systems = list(generations)
    rng = random.Random(seed)
    slots = _anonymous_ids(len(systems))
    rows: list[dict[str, str]] = []
    key: dict[str, str] = {}
    for i, prompt in enumerate(prompts):
        order = systems[:]
        rng.shuffle(order)
        for slot, system in zip(slots, order, strict=True):
            rid = f"{i + 1}-{slot}"
            key[rid] = system
            response = generations[system][i][1]
            rows.append({"item": str(i + 1), "prompt": prompt, "response_id": rid,
                         "response": response, **{o: "" for o in objectives}})
    out_csv = Path(out_csv)
    atomic_write_text(out_csv, _to_csv([*BASE_COLUMNS, *objectives], rows))
    key_path = Path(key_path) if key_path is not None else default_key_path(out_csv)
    atomic_write_json(key_path, {"sheet": out_csv.name, "seed": seed, "objectives": objectives,
                                 "systems": systems, "ids": key,
                                 "note": "private: do not show this file to raters"})
    return out_csv, key_path


def _to_csv(columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# ----------------------------------------------------------------------------- import


@dataclass
class HumanEvalResult:
    """Normalised scores (0..1) per system per objective, and agreement per objective."""

    scores: dict[str, dict[str, float]]
    agreement: dict[str, dict[str, float | None]]
    n_raters: int
    n_items: int
    per_rater: list[dict[str, dict[str, float]]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_key(key: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(key, Mapping):
        return dict(key)
    path = Path(key)
    if not path.is_file():
        raise FileNotFoundError(f"key file {path} not found (written by `human-eval export`)")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "ids" not in data or "objectives" not in data:
        raise DataError(f"{path} is not a human-eval key file (needs `ids` and `objectives`)")
    return data


def _parse_rating(value: str | None, where: str) -> int:
    text = (value or "").strip()
    if not text:
        raise DataError(f"{where}: missing rating; fill in 0, 1 or 2")
    try:
        number = float(text)
    except ValueError:
        raise DataError(f"{where}: {text!r} is not a rating; use 0, 1 or 2") from None
    if number not in RATINGS:
        raise DataError(f"{where}: rating {text!r} is out of range; use 0, 1 or 2")
    return int(number)


def read_sheet(path: str | Path, key: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """One rater's ratings: {response_id: {objective: 0|1|2}}, every value checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rating sheet {path} not found")
    objectives, ids = list(key["objectives"]), dict(key["ids"])
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("response_id", *objectives) if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: column(s) {missing} missing; keep the exported header")
        out: dict[str, dict[str, int]] = {}
        for line, row in enumerate(reader, start=2):
            rid = (row.get("response_id") or "").strip()
            if rid not in ids:
                raise DataError(f"{path} line {line}: unknown response_id {rid!r} (not in key)")
            if rid in out:
                raise DataError(f"{path} line {line}: response_id {rid!r} appears twice")
            out[rid] = {o: _parse_rating(row.get(o), f"{path} line {line}, column {o!r}")
                        for o in objectives}
    absent = sorted(set(ids) - set(out))
    if absent:
        raise DataError(f"{path}: {len(absent)} response(s) not rated, e.g. {absent[:3]}")
    return out


def percent_agreement(ratings: Sequence[Sequence[int]]) -> float:
    """Mean over items of the share of rater pairs that agree; `ratings[i]` = item i's ratings."""
    shares = []
    for item in ratings:
        pairs = list(itertools.combinations(item, 2))
        if not pairs:
            raise DataError("agreement needs at least two raters")
        shares.append(sum(a == b for a, b in pairs) / len(pairs))
    return sum(shares) / len(shares)


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's kappa of two raters over the same items (None when undefined, p_e = 1)."""
    if len(a) != len(b) or not a:
        raise DataError("cohen_kappa needs two equally long, non-empty rating lists")
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    cats = set(a) | set(b)
    p_e = sum((a.count(c) / n) * (b.count(c) / n) for c in cats)
    return None if p_e >= 1.0 else (p_o - p_e) / (1.0 - p_e)


def fleiss_kappa(ratings: Sequence[Sequence[int]], categories: Sequence[int] = RATINGS
                 ) -> float | None:
    """Fleiss' kappa; `ratings[i]` holds item i's ratings, the same number of raters per item."""
    n_items = len(ratings)
    n = len(ratings[0]) if n_items else 0
    if n_items == 0 or n < 2 or any(len(r) != n for r in ratings):
        raise DataError("fleiss_kappa needs items rated by the same number (>= 2) of raters")
    counts = [[list(item).count(c) for c in categories] for item in ratings]
    p_items = [(sum(x * x for x in row) - n) / (n * (n - 1)) for row in counts]
    p_bar = sum(p_items) / n_items
    shares = [sum(row[j] for row in counts) / (n_items * n) for j in range(len(categories))]
    p_e = sum(s * s for s in shares)
    return None if p_e >= 1.0 else (p_bar - p_e) / (1.0 - p_e)


def _agreement(item_ratings: list[list[int]]) -> dict[str, float | None]:
    n_raters = len(item_ratings[0])
    columns = list(zip(*item_ratings, strict=True))
    pairwise = [cohen_kappa(list(x), list(y)) for x, y in itertools.combinations(columns, 2)]
    defined = [k for k in pairwise if k is not None]
    return {"percent_agreement": percent_agreement(item_ratings),
            "cohen_kappa": sum(defined) / len(defined) if defined else None,
            "fleiss_kappa": fleiss_kappa(item_ratings),
            "n_raters": float(n_raters)}


def _means(sheets: Sequence[Mapping[str, Mapping[str, int]]], ids: Mapping[str, str],
           objectives: Sequence[str]) -> dict[str, dict[str, float]]:
    sums: dict[str, dict[str, list[float]]] = {}
    for sheet in sheets:
        for rid, ratings in sheet.items():
            per = sums.setdefault(ids[rid], {o: [] for o in objectives})
            for o in objectives:
                per[o].append(ratings[o] / 2.0)
    return {s: {o: sum(v) / len(v) for o, v in per.items()} for s, per in sums.items()}


def import_ratings(sheet_csvs: Sequence[str | Path], key: str | Path | Mapping[str, Any],
                   out_json: str | Path | None = None) -> HumanEvalResult:
    """Read one filled sheet per rater; normalised scores per system/objective and agreement.

    Agreement needs at least two sheets; with one sheet it is reported as empty.
    """
    if not sheet_csvs:
        raise DataError("import_ratings needs at least one filled sheet (one per rater)")
    k = load_key(key)
    objectives, ids = list(k["objectives"]), dict(k["ids"])
    sheets = [read_sheet(p, k) for p in sheet_csvs]
    agreement: dict[str, dict[str, float | None]] = {}
    if len(sheets) >= 2:
        order = sorted(ids)
        for o in objectives:
            agreement[o] = _agreement([[s[rid][o] for s in sheets] for rid in order])
    result = HumanEvalResult(
        scores=_means(sheets, ids, objectives), agreement=agreement, n_raters=len(sheets),
        n_items=len(ids), per_rater=[_means([s], ids, objectives) for s in sheets])
    if out_json is not None:
        atomic_write_json(out_json, result.to_dict())
    return result
