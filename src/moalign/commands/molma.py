"""MOLMA commands: `train-rm` (`RMConfig`), `train-joint` (`MolmaConfig`), `compare`
(`CompareConfig`). Options follow the convention of `moalign.commands`.

Heavy imports (torch, transformers) happen inside the command bodies so `moalign --help` is fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from moalign.cli import app
from moalign.commands import ConfigOption, command_config, shortcut
from moalign.core.config import ConfigError, load_config, parse_pairs, require, save_config
from moalign.runs.layout import UnitDir


@dataclass
class CompareConfig:
    """`moalign compare`: greedy responses of several models on the same prompts, scored."""

    models: dict[str, str] = field(default_factory=dict)  # name -> adapter/run folder or model id
    against: dict[str, str] = field(default_factory=dict)  # baselines; {}: first model vs others
    objectives: list[str | dict[str, Any]] = field(
        default_factory=lambda: ["helpfulness", "safety"])
    # prompt file, embedded name or prompt source; None: the first run's held-out prompts
    prompts: str | list[str] | dict[str, Any] | None = None
    n_prompts: int = 24
    out: str = "runs/compare"
    max_new_tokens: int = 64
    base: str | None = None  # base model of adapters; None: each run's config/adapter_config
    device: str = "auto"

    def validate(self) -> None:
        require(bool(self.models), "give at least one --model NAME=DIR")
        twice = sorted(set(self.models) & set(self.against))
        require(not twice, f"model name(s) {twice} given in both --model and --against")
        require(self.n_prompts >= 1, f"n_prompts must be >= 1, got {self.n_prompts}")


def _echo_json(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


@app.command("train-rm")
def train_rm_cmd(
    objective: str | None = shortcut("--objective", help="helpfulness | safety: train on the "
                                     "shipped pairs for that objective."),
    data: str | None = shortcut("--data", help="Preference pairs (prompt, chosen, rejected; "
                                "HH/PKU/SHP layouts detected)."),
    replace_prepared: bool = typer.Option(
        False, "--replace-prepared", help="With --objective helpfulness|safety: save over the "
        "prepared reward model the embedded objective uses (default: write to out=, "
        "runs/reward_model, and leave it alone)."),
    config: ConfigOption = None,
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides of RMConfig, "
                                                 "e.g. backbone=smollm2-135m-instruct "
                                                 "train=lora"),
) -> None:
    """Train a Bradley-Terry reward model (MOLMA §3.2) and report its held-out accuracy."""
    from moalign.rewards.reward_models import (
        EMBEDDED_PREFS,
        RMConfig,
        embedded_reward_model_dir,
        train_reward_model,
    )

    cfg = command_config(RMConfig, config, overrides, objective=objective, data=data)
    embedded = cfg.objective in EMBEDDED_PREFS and cfg.data is None
    if replace_prepared:
        if not embedded:
            raise ConfigError("--replace-prepared replaces an embedded objective's reward "
                              f"model: use it with --objective one of {sorted(EMBEDDED_PREFS)} "
                              "and no --data")
        cfg.out = str(embedded_reward_model_dir(str(cfg.objective)))  # where scorers look
    result = train_reward_model(cfg)
    save_config(cfg, cfg.out, name="train_rm.yaml")
    typer.echo(f"held-out pairwise accuracy {result['val_accuracy']:.4f} (n_val="
               f"{result['n_val']}; train accuracy {result['train_accuracy']:.4f}, n_train="
               f"{result['n_train']})")
    typer.echo(f"saved reward model to {cfg.out}; score with --objectives {cfg.out}")
    if embedded and not replace_prepared:
        typer.echo(f"the prepared {cfg.objective} reward model is unchanged; pass "
                   "--replace-prepared to make the embedded objective use this one")


@app.command("train-joint")
def train_joint_cmd(
    config: ConfigOption = None,
    mode: str | None = shortcut("--mode", help="molma | so | so_weighted | so_piecewise"),
    combiner: str | None = shortcut("--combiner", help="aligned_mtl | weighted_sum | pcgrad"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint."),
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides of "
                                                 "MolmaConfig, e.g. iterations=5 memory=16 "
                                                 "max_new_tokens=32"),
) -> None:
    """MOLMA joint training (APA, per-objective critics, Aligned-MTL) or an SO baseline."""
    from moalign.molma.config import MolmaConfig
    from moalign.molma.trainer import train_molma

    cfg = command_config(MolmaConfig, config, overrides, mode=mode, combiner=combiner)
    summary = train_molma(cfg, resume=resume)
    _echo_json(summary)


def _named(specs: list[str] | None, flag: str) -> dict[str, str] | None:
    """`NAME=DIR` items (a bare DIR or model id is named after its last component)."""
    if not specs:
        return None
    items = [s if "=" in s else f"{Path(s).name or s}={s}" for s in specs]
    return parse_pairs(items, "NAME=DIR (or a model id)", flag, raw=True, unique=True)


def _default_prompts(models: dict[str, str], n: int) -> list[str]:
    """Held-out prompts of the first run folder's config (else the MolmaConfig defaults)."""
    from moalign.molma.config import MolmaConfig, held_out_prompts

    for path in models.values():
        cfg_file = UnitDir(Path(path)).config
        if cfg_file.is_file():
            return held_out_prompts(load_config(MolmaConfig, cfg_file), n)
    return held_out_prompts(MolmaConfig(), n)


@app.command("compare")
def compare_cmd(
    model: list[str] | None = shortcut("--model", "-m", help="NAME=DIR (adapter folder or run "
                                       "folder) or NAME=MODEL_ID; repeatable."),
    against: list[str] | None = shortcut("--against", "-a", help="NAME=DIR baselines (e.g. "
                                         "reference=smollm2-135m-instruct); default: the first "
                                         "--model versus the others."),
    objectives: str | None = shortcut("--objectives", "-o", help="(helpfulness,safety)"),
    prompts: str | None = shortcut("--prompts", help="Prompt file or embedded name; default: the "
                                   "held-out prompts of the first run."),
    n_prompts: int | None = shortcut("--n-prompts", help="Number of prompts (24)."),
    out: Path | None = shortcut("--out", help="(runs/compare)"),
    max_new_tokens: int | None = shortcut("--max-new-tokens", help="(64)"),
    base: str | None = shortcut("--base", help="Base model of the adapters (default: from each "
                                "run's config / adapter_config.json)."),
    device: str | None = shortcut("--device", help="(auto)"),
    config: ConfigOption = None,
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides of "
                                                 "CompareConfig."),
) -> None:
    """Greedy responses on the same prompts, rewards per objective, win rates, scatter plot."""
    from moalign.data import load_prompts
    from moalign.evaluation.win_rates import compare

    cfg = command_config(CompareConfig, config, overrides, models=_named(model, "--model"),
                         against=_named(against, "--against"), objectives=objectives,
                         prompts=prompts, n_prompts=n_prompts, out=out,
                         max_new_tokens=max_new_tokens, base=base, device=device)
    models = {**cfg.models, **cfg.against}
    test = (load_prompts(cfg.prompts)[:cfg.n_prompts] if cfg.prompts
            else _default_prompts(models, cfg.n_prompts))
    out = Path(cfg.out)
    results = compare(models, test, cfg.objectives, out_dir=out,
                      against=list(cfg.against) or None, base=cfg.base,
                      max_new_tokens=cfg.max_new_tokens, device=cfg.device)
    typer.echo((out / "table.md").read_text(encoding="utf-8"))
    typer.echo(f"wrote {out}/results.json, table.md, generations.jsonl"
               + (", scatter.png" if len(results["objectives"]) >= 2 else ""))
