"""SCST training commands: `train-expert` (one objective) and `train-baseline` (uniform / DynaOpt).

Both run the same loop, `moalign.emorl.scst.train_scst`, configured by one `SCSTConfig` following
the convention of `moalign.commands` (`--config` YAML, shortcut flags, trailing `key=value`), e.g.

    moalign train-expert --objective reflection max_steps=40 batch_size=4
    moalign train-expert --objective empathy --seeds 0,1,2 --out-dir runs/experts/empathy
    moalign train-baseline --method uniform --objectives reflection,empathy,fluency \
        --weights reflection=0.5,empathy=0.3,fluency=0.2

Heavy imports (torch, transformers) happen inside the command bodies so `moalign --help` is fast.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from moalign.cli import app
from moalign.commands import ConfigOption, command_config, shortcut
from moalign.core.config import ConfigError, parse_mapping, parse_overrides
from moalign.core.naming import objective_name, slug

if TYPE_CHECKING:
    from moalign.emorl.scst import SCSTConfig

DEFAULT_OBJECTIVES = "reflection,empathy,fluency"
DEFAULT_OUT_DIR = "runs/scst"

OVERRIDES_HELP = ("key=value overrides of the SCST config, e.g. max_steps=40 batch_size=4 "
                  "n_samples=3 max_new_tokens=32 lr=1e-4 kl_coef=0.01 reward_transform=log "
                  "data=my_prompts.csv column=text val_data=null device=cpu")


def parse_seeds(text: str | None) -> list[int] | None:
    """`0,1,2` -> [0, 1, 2]; None stays None."""
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {text!r} must be integers separated by commas, e.g. 0,1,2"
                          ) from None
    if not seeds:
        raise ConfigError("--seeds is empty; pass e.g. --seeds 0,1,2")
    return seeds


def parse_weights(text: str | None, objectives: list[str]) -> list[float] | None:
    """`0.5,0.3,0.2` (in objective order) or `reflection=0.5,empathy=0.3,...` -> floats."""
    if text is None:
        return None
    if "=" in text:
        mapping = parse_mapping(text)
        if sorted(mapping) != sorted(objectives):
            raise ConfigError(f"--weights names {sorted(mapping)} must match the objectives "
                              f"{objectives} exactly, e.g. "
                              + ",".join(f"{o}={1 / len(objectives):.2g}" for o in objectives))
        values: list[Any] = [mapping[o] for o in objectives]
    else:
        values = [v.strip() for v in text.split(",") if v.strip()]
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"--weights {text!r}: every weight must be a number, e.g. "
                          "0.5,0.3,0.2 or reflection=0.5,empathy=0.3,fluency=0.2") from None


def _build_config(config: Path | None, overrides: list[str] | None, default_out: str,
                  **shortcuts: object) -> SCSTConfig:
    """The `SCSTConfig`; an out_dir set nowhere becomes `default_out` (per objective/method)."""
    from moalign.emorl.scst import SCSTConfig

    cfg = command_config(SCSTConfig, config, overrides, **shortcuts)
    explicit = shortcuts.get("out_dir") is not None or "out_dir" in parse_overrides(overrides)
    if cfg.out_dir == DEFAULT_OUT_DIR and not explicit:
        cfg = dataclasses.replace(cfg, out_dir=default_out)
    return cfg


def _fmt(summary: dict[str, Any], name: str) -> str:
    before, after = summary["reward_before"][name], summary["reward_after"][name]
    if isinstance(before, dict):  # mean ± std over seeds
        return (f"{name}: {before['mean']:.4f} ± {before['std']:.4f} -> "
                f"{after['mean']:.4f} ± {after['std']:.4f}")
    return f"{name}: {before:.4f} -> {after:.4f}"


def _run(cfg: SCSTConfig, seeds: list[int] | None, resume: bool) -> None:
    from moalign.core.checkpoint import has_checkpoint
    from moalign.emorl.scst import train_scst, train_seeds

    if seeds is None:
        if resume and not has_checkpoint(cfg.out_dir):
            typer.echo(f"no checkpoint in {cfg.out_dir}: starting a fresh run")
        summary = train_scst(cfg, resume=resume and has_checkpoint(cfg.out_dir))
        typer.echo(f"{summary['steps']} steps, {summary['data_consumed']} prompts consumed, "
                   f"{summary['seconds']:.1f} s, converged={summary['converged']}")
    else:
        summary = train_seeds(cfg, seeds, resume=resume)
        parts = [f"{k} {summary[k]['mean']:.1f} ± {summary[k]['std']:.1f}"
                 for k in ("steps", "data_consumed", "seconds")]
        typer.echo(f"seeds {seeds}: " + ", ".join(parts))
    typer.echo("validation reward (before -> after):")
    for name in summary["objectives"]:
        typer.echo("  " + _fmt(summary, name))
    typer.echo(f"artifacts in {cfg.out_dir}")


@app.command("train-expert")
def train_expert(
    objective: str | None = shortcut("--objective", "-o", help="Objective to train the expert for: "
                                     "an embedded name (reflection, empathy, fluency, ...), a "
                                     "scorer folder, or kind:value (e.g. python:pkg.mod:func). "
                                     "Default: the config's single objective."),
    config: ConfigOption = None,
    seeds: str | None = shortcut("--seeds", help="Comma-separated seeds (e.g. 0,1,2): one run per "
                                 "seed in OUT_DIR/seed_<s>/, mean ± std."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint."),
    policy: str | None = shortcut("--policy", help="Base policy: bundled id "
                                  "(smollm2-135m-instruct), local model folder, or HF id."),
    out_dir: str | None = shortcut("--out-dir", help="Run directory (default "
                                   "runs/experts/<objective>)."),
    overrides: list[str] | None = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """Train one SCST expert (a LoRA adapter) for one objective (EMORL §5.1)."""
    name = objective or "expert"
    cfg = _build_config(config, overrides, f"runs/experts/{slug(name)}",
                        objectives=[objective] if objective else None, method="expert",
                        policy=policy, out_dir=out_dir)
    _run(cfg, parse_seeds(seeds), resume)


@app.command("train-baseline")
def train_baseline(
    method: str = typer.Option(..., "--method", "-m", help="uniform (fixed weights) or dynaopt "
                               "(Exp3 bandit weights)."),
    objectives: str | None = typer.Option(
        None, "--objectives", "-o", help="Comma-separated objectives (default: the config's, "
        f"else {DEFAULT_OBJECTIVES})."),
    weights: str | None = shortcut("--weights", "-w", help="uniform only: 0.5,0.3,0.2 or "
                                   "reflection=0.5,... (default 1/K each)."),
    config: ConfigOption = None,
    seeds: str | None = shortcut("--seeds", help="Comma-separated seeds, e.g. 0,1,2."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint."),
    policy: str | None = shortcut("--policy", help="Base policy (id or folder)."),
    out_dir: str | None = shortcut("--out-dir", help="Run directory (default "
                                   "runs/baselines/<method>)."),
    overrides: list[str] | None = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """Train a multi-objective SCST baseline: uniform weighted reward or DynaOpt."""
    if method not in ("uniform", "dynaopt"):
        raise ConfigError(f"--method {method!r} is not a baseline; choose uniform or dynaopt "
                          "(train-expert trains single-objective experts)")
    if objectives is None and config is None:
        objectives = DEFAULT_OBJECTIVES
    names = [o.strip() for o in objectives.split(",") if o.strip()] if objectives else None
    cfg = _build_config(config, overrides, f"runs/baselines/{method}", objectives=names,
                        method=method, policy=policy, out_dir=out_dir)
    if weights is not None:
        labels = [objective_name(o, strict=False) for o in cfg.objectives]
        cfg.weights = parse_weights(weights, labels)
        cfg.validate()
    _run(cfg, parse_seeds(seeds), resume)
