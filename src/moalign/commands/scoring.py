"""Basic commands: `score` (`ScoreConfig`), `train-scorer` (`TrainScorerConfig`), `prepare` (no
options), `metrics` (`MetricsConfig`). Options follow the convention of `moalign.commands`.

Heavy imports (torch, transformers) happen inside the command bodies so `moalign --help` is fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from moalign.cli import app
from moalign.commands import ConfigOption, command_config, shortcut
from moalign.core.config import require, save_config
from moalign.core.io import atomic_write_json, write_jsonl

if TYPE_CHECKING:
    from moalign.data import Record

DEFAULT_OBJECTIVES = "reflection,empathy,fluency"


@dataclass
class ScoreConfig:
    """`moalign score`: one (prompt, response) pair or a table of them, on some objectives."""

    objectives: list[str | dict[str, Any]] = field(default_factory=lambda: [
        *DEFAULT_OBJECTIVES.split(",")])
    prompt: str | None = None  # one prompt to score ...
    response: str | None = None  # ... and its response
    file: str | None = None  # or a JSONL/CSV/Parquet table of pairs
    prompt_column: str = "prompt"
    response_column: str = "response"
    out: str | None = None  # per-example scores (.jsonl/.csv/.json)
    batch_size: int = 16  # examples per scorer call

    def validate(self) -> None:
        require(self.file is not None or (self.prompt is not None and self.response is not None),
                "give --prompt and --response, or --file with prompt/response columns")
        require(len(self.objectives) > 0, "objectives is empty; e.g. --objectives reflection")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")


@dataclass
class MetricsConfig:
    """`moalign metrics`: lexical metrics of the responses in a table."""

    file: str | None = None  # JSONL/CSV/Parquet of responses (required)
    prompt_column: str = "prompt"  # for the edit rate
    response_column: str = "response"
    out: str | None = None  # write the metrics as JSON

    def validate(self) -> None:
        require(self.file is not None, "give --file with a table of responses")


def _read_pairs(file: str, prompt_column: str, response_column: str) -> list[Record]:
    from moalign.data import load_table

    return load_table(Path(file), columns={"prompt": prompt_column,
                                           "response": response_column})


def _write_rows(out: Path, rows: list[dict[str, Any]]) -> None:
    if out.suffix.lower() == ".csv":
        import pandas as pd

        out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(out, index=False)
    elif out.suffix.lower() == ".json":
        atomic_write_json(out, rows)
    else:
        write_jsonl(out, rows)


def _scores_table(rows: list[dict[str, Any]], names: list[str], max_rows: int = 20) -> Table:
    table = Table(title="scores")
    table.add_column("#", justify="right")
    table.add_column("prompt", overflow="fold", max_width=40)
    table.add_column("response", overflow="fold", max_width=40)
    for n in names:
        table.add_column(n, justify="right")
    for i, r in enumerate(rows[:max_rows]):
        table.add_row(str(i), r["prompt"][:120], r["response"][:120],
                      *(f"{r[n]:.4f}" for n in names))
    if len(rows) > 1:
        means = [sum(r[n] for r in rows) / len(rows) for n in names]
        table.add_row("mean", f"({len(rows)} examples)", "", *(f"{m:.4f}" for m in means))
    return table


@app.command("score")
def score(
    objectives: str | None = typer.Option(
        None, "--objectives", "-o", help="Comma-separated objective names, scorer folders or "
        f"kind:value specs (e.g. python:pkg.mod:func); default {DEFAULT_OBJECTIVES}."),
    prompt: str | None = shortcut("--prompt", help="One prompt to score."),
    response: str | None = shortcut("--response", help="Its response."),
    file: Path | None = shortcut("--file", "-f", help="JSONL/CSV/Parquet with prompt and response "
                                 "columns."),
    prompt_column: str | None = shortcut(help="Prompt column of --file (prompt)."),
    response_column: str | None = shortcut(help="Response column of --file (response)."),
    out: Path | None = shortcut("--out", help="Write per-example scores (.jsonl/.csv)."),
    batch_size: int | None = shortcut(help="Examples per scorer call (16)."),
    config: ConfigOption = None,
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides of ScoreConfig."),
) -> None:
    """Score (prompt, response) pairs on one or more objectives and print a table."""
    from moalign.rewards.scorers import build_scorers, score_matrix

    cfg = command_config(ScoreConfig, config, overrides, objectives=objectives, prompt=prompt,
                         response=response, file=file, out=out,
                         prompt_column=prompt_column, response_column=response_column,
                         batch_size=batch_size)
    if cfg.file is not None:
        pairs = _read_pairs(cfg.file, cfg.prompt_column, cfg.response_column)
    else:
        pairs = [{"prompt": cfg.prompt, "response": cfg.response}]
    scorers = build_scorers(cfg.objectives)
    prompts = [str(p["prompt"]) for p in pairs]
    responses = [str(p["response"]) for p in pairs]
    matrix = score_matrix(scorers, prompts, responses, batch_size=cfg.batch_size)  # (B, K)
    names = [s.name for s in scorers]
    rows = [{"prompt": p, "response": r, **dict(zip(names, map(float, m), strict=True))}
            for p, r, m in zip(prompts, responses, matrix.tolist(), strict=True)]
    Console().print(_scores_table(rows, names))
    if cfg.out is not None:
        _write_rows(Path(cfg.out), rows)
        typer.echo(f"wrote {len(rows)} rows to {cfg.out}")


@app.command("train-scorer")
def train_scorer_cmd(
    config: ConfigOption = None,
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides of "
                                                 "TrainScorerConfig, e.g. data=my.jsonl "
                                                 "out=runs/refl hidden=64"),
) -> None:
    """Train a MiniLM pair-head scorer on labelled (prompt, response, label) rows."""
    from moalign.rewards.heads import TrainScorerConfig, train_scorer

    cfg = command_config(TrainScorerConfig, config, overrides)
    result = train_scorer(cfg)
    save_config(cfg, cfg.out, name="train_scorer.yaml")
    typer.echo(f"held-out accuracy {result['val_accuracy']:.4f} (n_val={result['n_val']}, "
               f"train accuracy {result['train_accuracy']:.4f}, n_train={result['n_train']})")
    if "adversarial_accuracy" in result:
        typer.echo(f"adversarial accuracy {result['adversarial_accuracy']:.4f} "
                   f"(n={result['n_adversarial']}, {cfg.adversarial})")
    typer.echo(f"saved scorer to {cfg.out}; use it with --objectives {cfg.out}")


def head_accuracy_line(meta: dict[str, Any]) -> str:
    """A head's accuracy on the plain held-out prompts and on the adversarial held-out set."""
    line = f"held-out accuracy {meta['val_accuracy']:.4f} plain (n={meta['n_val']})"
    if "adversarial_accuracy" in meta:
        line += (f", {meta['adversarial_accuracy']:.4f} adversarial "
                 f"(n={meta['n_adversarial']})")
    return line


def _prepare_rows() -> list[tuple[str, str, str]]:
    from moalign.models import MINILM, SMOLLM2, resolve_model
    from moalign.rewards.heads import EMBEDDED_HEADS, META_FILE, ensure_embedded_head, read_meta
    from moalign.rewards.scorers import embedded_reward_model_dir

    rows = [(SMOLLM2, resolve_model(SMOLLM2), "ready"), (MINILM, resolve_model(MINILM), "ready")]
    for name in sorted(EMBEDDED_HEADS):
        path = ensure_embedded_head(name)
        rows.append((f"{name} head", str(path), head_accuracy_line(read_meta(path))))
    for name in ("helpfulness", "safety"):
        folder = embedded_reward_model_dir(name)
        meta = read_meta(folder) if (folder / META_FILE).is_file() else None
        state = (f"held-out pairwise accuracy {meta.get('val_accuracy', float('nan')):.4f}"
                 if meta else "missing: run `moalign prepare`")
        rows.append((f"{name} reward model", str(folder), state))
    return rows


@app.command("prepare")
def prepare() -> None:
    """Warm every embedded asset offline: SmolLM2, MiniLM, the reflection/empathy heads and the
    helpfulness/safety reward models."""
    from moalign.rewards.reward_models import ensure_embedded_reward_models

    ensure_embedded_reward_models()
    table = Table(title="embedded assets")
    for col in ("asset", "location", "status"):
        table.add_column(col, overflow="fold")
    for row in _prepare_rows():
        table.add_row(*row)
    Console().print(table)


@app.command("metrics")
def metrics_cmd(
    file: Path | None = shortcut("--file", "-f", help="JSONL/CSV/Parquet of responses."),
    prompt_column: str | None = shortcut(help="Prompt column, for the edit rate (prompt)."),
    response_column: str | None = shortcut(help="Response column (response)."),
    out: Path | None = shortcut("--out", help="Write the metrics as JSON."),
    config: ConfigOption = None,
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides of "
                                                 "MetricsConfig."),
) -> None:
    """Lexical metrics of responses: diversity-2 and edit rate (mean ± std), by moalign's and
    by the EMORL authors' definitions (`*_authors`)."""
    from moalign.evaluation.metrics import lexical_metrics, mean_std

    cfg = command_config(MetricsConfig, config, overrides, file=file,
                         prompt_column=prompt_column, response_column=response_column,
                         out=out)
    rows = _read_pairs(str(cfg.file), cfg.prompt_column, cfg.response_column)
    prompts = [str(r["prompt"]) for r in rows]
    responses = [str(r["response"]) for r in rows]
    per_response = lexical_metrics(prompts, responses)  # moalign's and the EMORL authors'
    result: dict[str, float] = {"n": len(rows)}
    for key, values in per_response.items():
        result[key], result[key + "_std"] = mean_std(values)
    for key in per_response:
        typer.echo(f"{key}: {result[key]:.4f} ± {result[key + '_std']:.4f}")
    typer.echo(f"n: {result['n']}")
    if cfg.out is not None:
        atomic_write_json(Path(cfg.out), result)
        typer.echo(f"wrote {cfg.out}")
