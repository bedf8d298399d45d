"""Study commands: `run` (a whole study from one config), `report`, and `human-eval export|import`.

Heavy imports (torch, transformers) happen inside the command bodies so `moalign --help` is fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from moalign.cli import app

human_app = typer.Typer(help="Blinded human-evaluation sheets: export for raters, import their "
                             "ratings (normalised scores + agreement).", no_args_is_help=True)
app.add_typer(human_app, name="human-eval")


@app.command("run")
def run_cmd(
    config: Path = typer.Argument(..., help="Study config (YAML) with `kind: emorl` or "
                                            "`kind: molma`, e.g. configs/counsel-demo.yaml."),
    overrides: list[str] | None = typer.Argument(
        None, help="key=value overrides, e.g. out_dir=runs/x evaluation.runs=1 "
                   "training.max_steps=20 workers=3"),
) -> None:
    """Run (or resume) a whole study: training, search, baselines, evaluation, report."""
    from moalign.emorl.study import load_study, run_study

    cfg = load_study(config, overrides or [])
    run_dir = run_study(cfg)
    typer.echo(f"study finished: {run_dir}")
    typer.echo(f"report: {run_dir / 'report' / 'report.html'}")


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
    from moalign.core.errors import DataError
    from moalign.core.io import read_jsonl

    gen_dir = run_dir / "eval" / "generations"
    files = {p.stem: p for p in sorted(gen_dir.glob("*.jsonl"))} if gen_dir.is_dir() else {}
    if not files:
        raise DataError(f"{gen_dir} holds no generations; run the study's evaluation first")
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


def _generations_from_files(files: list[str]) -> dict[str, list[tuple[str, str]]]:
    """`system=path.jsonl` items: prompt/response tables, one per system."""
    from moalign.core.config import ConfigError
    from moalign.data import load_table

    out: dict[str, list[tuple[str, str]]] = {}
    for item in files:
        if "=" not in item:
            raise ConfigError(f"--generations {item!r} must look like SYSTEM=FILE.jsonl")
        name, path = item.split("=", 1)
        rows = load_table(Path(path))
        out[name.strip()] = [(str(r["prompt"]), str(r["response"])) for r in rows]
    return out


@human_app.command("export")
def export_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Sheet to write (CSV) for the raters."),
    run_dir: Path | None = typer.Option(None, "--run", help="Take generations from this run "
                                                              "(eval/generations/*.jsonl)."),
    generations: list[str] | None = typer.Option(
        None, "--generations", "-g", help="SYSTEM=FILE (JSONL/CSV with prompt, response); "
                                          "repeat for every system."),
    systems: str | None = typer.Option(None, "--systems", help="Comma-separated systems of "
                                                                "--run (default: all)."),
    objectives: str = typer.Option("reflection,empathy,fluency", "--objectives",
                                   help="Rating columns (0/1/2 each)."),
    n: int = typer.Option(20, "--n", help="Prompts per sheet (0: all)."),
    seed: int = typer.Option(0, "--seed", help="Shuffling seed for the blinded order."),
    key: Path | None = typer.Option(None, "--key", help="Private key file (default: "
                                                         "OUT.key.json next to the sheet)."),
) -> None:
    """Write a blinded rating sheet and its private key (id -> system)."""
    from moalign.core.config import ConfigError
    from moalign.evaluation.human_eval import export_sheet

    if (run_dir is None) == (not generations):
        raise ConfigError("give exactly one source: --run RUN_DIR or --generations SYSTEM=FILE")
    names = [s.strip() for s in systems.split(",")] if systems else None
    gens = (_generations_from_run(run_dir, names, n, None) if run_dir is not None
            else _generations_from_files(list(generations or [])))
    if generations and n:
        gens = {k: v[:n] for k, v in gens.items()}
    sheet, key_path = export_sheet(gens, [o.strip() for o in objectives.split(",") if o.strip()],
                                   out, seed=seed, key_path=key)
    typer.echo(f"sheet: {sheet} ({len(gens)} systems, {len(next(iter(gens.values())))} prompts)")
    typer.echo(f"key (keep private): {key_path}")


@human_app.command("import")
def import_cmd(
    sheets: list[Path] = typer.Argument(..., help="Filled sheets, one per rater."),
    key: Path = typer.Option(..., "--key", help="The key file written by `export`."),
    out: Path | None = typer.Option(None, "--out", help="Write the scores as JSON (use "
                                                        "RUN/human_eval/scores.json to put "
                                                        "them in the run's report)."),
) -> None:
    """Normalised scores (0..1) per system and objective, and inter-rater agreement."""
    from rich.console import Console
    from rich.table import Table

    from moalign.evaluation.human_eval import import_ratings

    result = import_ratings(sheets, key, out_json=out)
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
    if out is not None:
        typer.echo(f"scores: {out}")


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"
