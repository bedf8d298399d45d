"""Study commands: `run` (a whole study from one config), `report`, and `human-eval export|import`.

Options (convention of `moalign.commands`): `run CONFIG key=value ...` takes its study config as
the positional argument; `report RUN_DIR` has nothing to configure; `human-eval export` and
`human-eval import` are backed by `ExportConfig` and `ImportConfig`.

Heavy imports (torch, transformers) happen inside the command bodies so `moalign --help` is fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from moalign.cli import app
from moalign.commands import ConfigOption, command_config, shortcut, split_overrides
from moalign.configs import shipped_config_names
from moalign.core.config import parse_pairs, require
from moalign.core.errors import DataError
from moalign.core.io import read_jsonl
from moalign.evaluation.human_eval import export_sheet, import_ratings
from moalign.runs.layout import RunDir

human_app = typer.Typer(help="Blinded human-evaluation sheets: export for raters, import their "
                             "ratings (normalised scores + agreement).", no_args_is_help=True)
app.add_typer(human_app, name="human-eval")


@dataclass
class ExportConfig:
    """`moalign human-eval export`: a blinded rating sheet from a run or from response files."""

    out: str | None = None  # the sheet (CSV) for the raters (required)
    run: str | None = None  # take generations from this run (eval/generations/*.jsonl) ...
    generations: dict[str, str] = field(default_factory=dict)  # ... or system -> JSONL/CSV file
    systems: list[str] | None = None  # systems of `run` to rate (None: all)
    objectives: list[str] = field(default_factory=lambda: ["reflection", "empathy", "fluency"])
    n: int = 20  # prompts per sheet (0: all)
    seed: int = 0  # shuffling seed of the blinded order
    key: str | None = None  # private key file (None: OUT.key.json next to the sheet)

    def validate(self) -> None:
        require(self.out is not None, "give --out SHEET.csv")
        require((self.run is None) != (not self.generations),
                "give exactly one source: --run RUN_DIR or --generations SYSTEM=FILE")
        require(self.n >= 0, f"n must be >= 0 (0: all prompts), got {self.n}")


@dataclass
class ImportConfig:
    """`moalign human-eval import`: normalised scores and agreement from filled sheets."""

    sheets: list[str] = field(default_factory=list)  # filled sheets, one per rater
    key: str | None = None  # the key file written by `export` (required)
    out: str | None = None  # scores as JSON (RUN/human_eval/scores.json feeds the report)

    def validate(self) -> None:
        require(bool(self.sheets), "give the filled sheets, one per rater")
        require(self.key is not None, "give --key KEY.json (written by `human-eval export`)")


@app.command("run")
def run_cmd(
    config: Path = typer.Argument(..., help="Study config: a YAML file with `kind: emorl` or "
                                            "`kind: molma`, or the name of a shipped one: "
                                            f"{', '.join(shipped_config_names())}."),
    overrides: list[str] | None = typer.Argument(
        None, help="key=value overrides, e.g. out_dir=runs/x evaluation.runs=1 "
                   "training.max_steps=20 workers=3"),
) -> None:
    """Run (or resume) a whole study: training, search, baselines, evaluation, report."""
    from moalign.emorl.study import load_study, run_study

    cfg = load_study(config, overrides or [])
    run_dir = run_study(cfg)
    typer.echo(f"study finished: {run_dir}")
    typer.echo(f"report: {RunDir(run_dir).report_html}")


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `moalign run`."),
) -> None:
    """Build RUN_DIR/report/report.html (self-contained) and report.md from the artifacts."""
    from moalign.runs.report import build_report

    html_path, md_path = build_report(run_dir)
    typer.echo(f"html: {html_path}")
    typer.echo(f"markdown: {md_path}")


def _generations_from_run(run_dir: Path, systems: list[str] | None, n: int, seed: int | None
                          ) -> dict[str, list[tuple[str, str]]]:
    """Responses of the first evaluated (seed, run) of each system, for the first n prompts."""
    run = RunDir(run_dir)
    files = {p.stem: p for p in run.generation_files()}
    if not files:
        raise DataError(f"{run.generations_dir} holds no generations; run the study's "
                        "evaluation first")
    chosen = systems or list(files)
    unknown = sorted(set(chosen) - set(files))
    if unknown:
        raise DataError(f"unknown system(s) {unknown}; this run has {sorted(files)}")
    out: dict[str, list[tuple[str, str]]] = {}
    for name in chosen:
        rows = read_jsonl(files[name])
        first = (rows[0]["seed"] if seed is None else seed, rows[0]["run"])
        rows = [r for r in rows if (r["seed"], r["run"]) == first]
        out[name] = [(r["prompt"], r["response"]) for r in rows[:n or None]]
    return out


def _generations_from_files(files: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """{system: path}: prompt/response tables, one per system."""
    from moalign.data import load_table

    out: dict[str, list[tuple[str, str]]] = {}
    for name, path in files.items():
        rows = load_table(Path(path))
        out[name] = [(str(r["prompt"]), str(r["response"])) for r in rows]
    return out


@human_app.command("export")
def export_cmd(
    out: Path | None = shortcut("--out", "-o", help="Sheet to write (CSV) for the raters."),
    run_dir: Path | None = shortcut("--run", help="Take generations from this run "
                                    "(eval/generations/*.jsonl)."),
    generations: list[str] | None = shortcut("--generations", "-g", help="SYSTEM=FILE (JSONL/CSV "
                                             "with prompt, response); repeat for every system."),
    systems: str | None = shortcut("--systems", help="Comma-separated systems of --run (default: "
                                   "all)."),
    objectives: str | None = shortcut("--objectives", help="Rating columns, 0/1/2 each "
                                      "(reflection,empathy,fluency)."),
    n: int | None = shortcut("--n", help="Prompts per sheet (20; 0: all)."),
    seed: int | None = shortcut("--seed", help="Shuffling seed for the blinded order (0)."),
    key: Path | None = shortcut("--key", help="Private key file (default: OUT.key.json next to the "
                                "sheet)."),
    config: ConfigOption = None,
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides of "
                                                 "ExportConfig."),
) -> None:
    """Write a blinded rating sheet and its private key (id -> system)."""
    files = (parse_pairs(generations, "SYSTEM=FILE.jsonl", "--generations", raw=True)
             if generations else None)
    cfg = command_config(ExportConfig, config, overrides, out=out, run=run_dir,
                         generations=files, systems=systems, objectives=objectives, n=n,
                         seed=seed, key=key)
    gens = (_generations_from_run(Path(cfg.run), cfg.systems, cfg.n, None)
            if cfg.run is not None else _generations_from_files(cfg.generations))
    if cfg.generations and cfg.n:
        gens = {k: v[:cfg.n] for k, v in gens.items()}
    sheet, key_path = export_sheet(gens, cfg.objectives, str(cfg.out), seed=cfg.seed,
                                   key_path=cfg.key)
    typer.echo(f"sheet: {sheet} ({len(gens)} systems, {len(next(iter(gens.values())))} prompts)")
    typer.echo(f"key (keep private): {key_path}")


@human_app.command("import")
def import_cmd(
    sheets: list[str] | None = typer.Argument(
        None, help="Filled sheets, one per rater (an argument FIELD=VALUE naming an "
                   "ImportConfig field is an override)."),
    key: Path | None = shortcut("--key", help="The key file written by `export`."),
    out: Path | None = shortcut("--out", help="Write the scores as JSON (use "
                                "RUN/human_eval/scores.json to put them in the run's report)."),
    config: ConfigOption = None,
) -> None:
    """Normalised scores (0..1) per system and objective, and inter-rater agreement."""
    files, overrides = split_overrides(sheets, ImportConfig)
    cfg = command_config(ImportConfig, config, overrides, sheets=files or None, key=key,
                         out=out)
    result = import_ratings(cfg.sheets, str(cfg.key), out_json=cfg.out)
    names = sorted({o for s in result.scores.values() for o in s})
    table = Table(title=f"human evaluation ({result.n_raters} rater(s), {result.n_items} "
                        "responses)")
    for col in ["system", *names]:
        table.add_column(col)
    for system, scores in result.scores.items():
        table.add_row(system, *(f"{scores[o]:.4f}" for o in names))
    console = Console()
    console.print(table)
    if result.agreement:
        agree = Table(title="agreement")
        for col in ("objective", "% agreement", "Cohen's kappa", "Fleiss' kappa"):
            agree.add_column(col)
        for o, a in result.agreement.items():
            agree.add_row(o, *(_fmt(a[k]) for k in ("percent_agreement", "cohen_kappa",
                                                    "fleiss_kappa")))
        console.print(agree)
    if cfg.out is not None:
        typer.echo(f"scores: {cfg.out}")


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
