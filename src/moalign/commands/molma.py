"""MOLMA commands: `train-rm`, `train-joint`, `compare`.

Heavy imports (torch, transformers) happen inside the command bodies so `moalign --help` is fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from moalign.cli import app


def _echo_json(obj: Any) -> None:
    import json

    typer.echo(json.dumps(obj, indent=2, default=str))


@app.command("train-rm")
def train_rm_cmd(
    objective: str | None = typer.Option(None, "--objective", help="helpfulness | safety: train "
                                         "the embedded reward model from the shipped pairs "
                                         "(saved where the scorers look unless out= is given)."),
    data: str | None = typer.Option(None, "--data", help="Preference pairs (prompt, chosen, "
                                    "rejected; HH/PKU/SHP layouts detected)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML RMConfig."),
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides, e.g. "
                                                 "backbone=smollm2-135m-instruct train=lora"),
) -> None:
    """Train a Bradley-Terry reward model (MOLMA §3.2) and report its held-out accuracy."""
    from moalign.core.config import ConfigError, load_config, save_config
    from moalign.rewards.reward_models import (
        EMBEDDED_PREFS,
        RMConfig,
        embedded_reward_model_dir,
        train_reward_model,
    )

    items = list(overrides or [])
    if objective is None and data is None and config is None and not any(
            i.startswith(("objective=", "data=")) for i in items):
        raise ConfigError("say what to learn: --objective helpfulness|safety or --data FILE")
    if objective is not None:
        items.append(f"objective={objective}")
    if data is not None:
        items.append(f"data={data}")
    cfg = load_config(RMConfig, config, items)
    embedded = cfg.objective in EMBEDDED_PREFS and cfg.data is None
    if embedded and not any(i.startswith("out=") for i in items) and (
            config is None or cfg.out == RMConfig.out):
        cfg.out = str(embedded_reward_model_dir(str(cfg.objective)))
    result = train_reward_model(cfg)
    save_config(cfg, cfg.out, name="train_rm.yaml")
    typer.echo(f"held-out pairwise accuracy {result['val_accuracy']:.4f} (n_val="
               f"{result['n_val']}; train accuracy {result['train_accuracy']:.4f}, n_train="
               f"{result['n_train']})")
    typer.echo(f"saved reward model to {cfg.out}; score with --objectives {cfg.out}")


@app.command("train-joint")
def train_joint_cmd(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML MolmaConfig."),
    mode: str | None = typer.Option(None, "--mode", help="molma | so | so_weighted | "
                                    "so_piecewise"),
    combiner: str | None = typer.Option(None, "--combiner", help="aligned_mtl | weighted_sum | "
                                        "pcgrad"),
    resume: bool = typer.Option(False, "--resume", help="Continue from out_dir/checkpoint."),
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides, e.g. "
                                                 "iterations=5 memory=16 max_new_tokens=32"),
) -> None:
    """MOLMA joint training (APA, per-objective critics, Aligned-MTL) or an SO baseline."""
    from moalign.core.config import load_config
    from moalign.molma.trainer import MolmaConfig, train_molma

    items = list(overrides or [])
    items += [f"mode={mode}"] if mode else []
    items += [f"combiner={combiner}"] if combiner else []
    cfg = load_config(MolmaConfig, config, items)
    summary = train_molma(cfg, resume=resume)
    _echo_json(summary)


def _named(specs: list[str], flag: str) -> dict[str, str]:
    from moalign.core.config import ConfigError

    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).name or spec, spec
        if not name or not path:
            raise ConfigError(f"{flag} expects NAME=DIR (or a model id), got {spec!r}")
        if name in out:
            raise ConfigError(f"model name {name!r} is given twice")
        out[name] = path
    return out


def _default_prompts(models: dict[str, str], n: int) -> list[str]:
    """Held-out prompts of the first run folder's config (else the MolmaConfig defaults)."""
    from moalign.core.config import load_config
    from moalign.molma.trainer import MolmaConfig, held_out_prompts

    for path in models.values():
        cfg_file = Path(path) / "config.yaml"
        if cfg_file.is_file():
            return held_out_prompts(load_config(MolmaConfig, cfg_file), n)
    return held_out_prompts(MolmaConfig(), n)


@app.command("compare")
def compare_cmd(
    model: list[str] = typer.Option(..., "--model", "-m", help="NAME=DIR (adapter folder or run "
                                    "folder) or NAME=MODEL_ID; repeatable."),
    against: list[str] | None = typer.Option(None, "--against", "-a", help="NAME=DIR baselines "
                                             "(e.g. reference=smollm2-135m-instruct); default: "
                                             "the first --model versus the others."),
    objectives: str = typer.Option("helpfulness,safety", "--objectives", "-o"),
    prompts: str | None = typer.Option(None, "--prompts", help="Prompt file or embedded name; "
                                       "default: the held-out prompts of the first run."),
    n_prompts: int = typer.Option(24, "--n-prompts", help="Number of prompts."),
    out: Path = typer.Option(Path("runs/compare"), "--out"),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
    base: str | None = typer.Option(None, "--base", help="Base model of the adapters (default: "
                                    "from each run's config / adapter_config.json)."),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Greedy responses on the same prompts, rewards per objective, win rates, scatter plot."""
    from moalign.data import load_prompts
    from moalign.evaluation.win_rates import compare

    primary, baselines = _named(model, "--model"), _named(against or [], "--against")
    models = {**primary, **baselines}
    test = (load_prompts(prompts)[:n_prompts] if prompts
            else _default_prompts(models, n_prompts))
    results = compare(models, test, [o.strip() for o in objectives.split(",") if o.strip()],
                      out_dir=out, against=list(baselines) or None, base=base,
                      max_new_tokens=max_new_tokens, device=device)
    typer.echo((out / "table.md").read_text(encoding="utf-8"))
    typer.echo(f"wrote {out}/results.json, table.md, generations.jsonl"
               + (", scatter.png" if len(results["objectives"]) >= 2 else ""))
