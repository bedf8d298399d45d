"""Aggregation commands: `search`, `generate`, and `ensemble create|add|show`.

EMORL's scalability (§6): an ensemble is a base model plus one LoRA expert per objective listed
in `RUN_DIR/ensemble.json`; adding an objective adds one expert and never touches the others.
Its explainability and user control (§6): `moalign generate --weights reflection=0.8,...` picks
the trade-off at inference time, without retraining.

Configs (convention of `moalign.commands`): `search` -> `SearchConfig`, `generate` ->
`GenerateConfig`, `ensemble create` -> `EnsembleCreateConfig`, `ensemble add` ->
`EnsembleAddConfig`; `ensemble show RUN_DIR` has nothing to configure. Building ensembles is
library logic (`moalign.emorl.manifest`); these commands parse, call it and print.

Heavy imports (torch, transformers) happen inside the command bodies so `moalign --help` is fast.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import typer

from moalign.cli import app
from moalign.commands import (
    ConfigOption,
    EnsembleArgument,
    EnsembleOption,
    command_config,
    shortcut,
    split_overrides,
)
from moalign.core.config import ConfigError, parse_pairs, require
from moalign.sampling import Sampling

ensemble_app = typer.Typer(help="Assemble ensembles of LoRA experts (one per objective).",
                           no_args_is_help=True)
app.add_typer(ensemble_app, name="ensemble")

# ----------------------------------------------------------------------------- search


@app.command("search")
def search_cmd(
    ensemble: EnsembleOption = None,
    config: ConfigOption = None,
    overrides: list[str] | None = typer.Argument(
        None, help="key=value overrides of SearchConfig, e.g. method=grid grid_step=0.25 "
                   "level=logits iterations=5 n_prompts=16 objectives=[reflection,empathy]"),
) -> None:
    """Search aggregation weights (hierarchical grid search, EMORL Algorithm 1)."""
    from moalign.emorl.manifest import EnsembleManifest
    from moalign.emorl.weight_search import SearchConfig, describe_iteration, run_search

    cfg = command_config(SearchConfig, config, overrides, ensemble=ensemble)

    result = run_search(cfg, on_iteration=lambda e: typer.echo(describe_iteration(e)))
    out = cfg.resolved_out_dir()
    names = EnsembleManifest.load(cfg.ensemble).objectives
    weights = ",".join(f"{n}={w:.4g}" for n, w in zip(names, result.best_point, strict=True))
    typer.echo(f"best score {result.best_score:.4f} with weights {weights}")
    typer.echo("objectives: " + ", ".join(f"{k}={v:.4f}" for k, v in
                                          result.best_objectives.items()))
    typer.echo(f"{result.n_evaluations} new evaluations ({len(result.evaluated)} points used, "
               f"{result.n_points_visited} without the cache); artifacts in {out}")


# ----------------------------------------------------------------------------- generate


def read_prompt_file(path: Path) -> list[str]:
    """Prompts from a .txt file (one per line) or any table with a `prompt` column."""
    from moalign.data import load_prompts

    if path.suffix.lower() == ".txt":
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return load_prompts(str(path))


@dataclass
class GenerateConfig:
    """`moalign generate`: decode prompts with a weighted ensemble (EMORL §4.1 aggregation)."""

    ensemble: str | None = None  # run directory holding ensemble.json (required)
    prompts: list[str] = field(default_factory=list)  # more prompt texts (after the positional)
    file: str | None = None  # more prompts: .txt (one per line) or a table with `prompt`
    # "a=0.8,b=0.2", {a: 0.8} or a list in objective order; None: the searched best weights,
    # else uniform
    weights: str | dict[str, float] | list[float] | None = None
    level: Literal["states", "logits", "params"] = "states"  # the aggregation level
    sampling: Sampling = field(default_factory=Sampling)  # seed null here means seed 0
    system: str | None = None  # system prompt; None: the ensemble's
    as_json: bool = False  # one JSON object per prompt instead of the bare response
    device: str = "auto"

    def validate(self) -> None:
        require(self.ensemble is not None, "give --ensemble RUN_DIR (a folder with "
                "ensemble.json)")
        require(bool(self.prompts) or self.file is not None, 'give prompt texts as arguments '
                '(moalign generate -e RUN "text") or --file prompts.txt')


@app.command("generate")
def generate_cmd(
    prompts: list[str] | None = typer.Argument(
        None, help="Prompt texts (client statements); an argument FIELD=VALUE naming a "
                   "GenerateConfig field is an override (sampling.top_p=0.9, level=logits)."),
    ensemble: EnsembleOption = None,
    weights: str | None = shortcut("--weights", "-w", help="Per-objective weights, e.g. "
                                   "reflection=0.8,empathy=0.5,fluency=0.1 (omitted names get 0). "
                                   "Default: the searched best weights, else uniform."),
    level: str | None = shortcut("--level", help="Aggregation: states (default), logits, params."),
    max_new_tokens: int | None = shortcut("--max-new-tokens", help="(64)"),
    sample: bool | None = shortcut("--sample/--greedy", help="Sample or decode greedily "
                                   "(default)."),
    temperature: float | None = shortcut("--temperature", help="(1.0)"),
    top_p: float | None = shortcut("--top-p", help="(1.0)"),
    top_k: int | None = shortcut("--top-k", help="(0: off)"),
    repetition_penalty: float | None = shortcut("--repetition-penalty", help="(1.0: off)"),
    stop: list[str] | None = shortcut("--stop", help="Stop string (repeatable); the response ends "
                                      "before it."),
    n: int | None = shortcut("--n", "-n", help="Responses per prompt (1; needs --sample)."),
    generation_config: Path | None = shortcut("--generation-config", help="A transformers "
                                              "generation_config.json (or a folder holding one) as "
                                              "the sampling settings; flags and overrides still "
                                              "win."),
    seed: int | None = shortcut("--seed", help="Sampling seed (0)."),
    system: str | None = shortcut("--system", help="System prompt (default: the ensemble's)."),
    file: Path | None = shortcut("--file", "-f", help="More prompts: .txt (one per line) or a "
                                 "table."),
    as_json: bool | None = shortcut("--json", help="Print one JSON object per prompt."),
    device: str | None = shortcut("--device", help="auto (default), cpu, cuda."),
    config: ConfigOption = None,
) -> None:
    """Generate with a weighted ensemble: choose the objectives' trade-off without retraining.
    Other decoding options (no_repeat_ngram_size, min_new_tokens) as sampling.KEY=VALUE."""
    texts, overrides = split_overrides(prompts, GenerateConfig)
    cfg = command_config(GenerateConfig, config, overrides, **{
        "sampling": _generation_config_sampling(generation_config),
        "ensemble": ensemble, "prompts": texts or None, "weights": weights, "level": level,
        "sampling.max_new_tokens": max_new_tokens, "sampling.do_sample": sample,
        "sampling.temperature": temperature, "sampling.top_p": top_p, "sampling.seed": seed,
        "sampling.top_k": top_k, "sampling.repetition_penalty": repetition_penalty,
        "sampling.stop": stop, "sampling.num_return_sequences": n,
        "system": system, "file": file, "as_json": as_json, "device": device})
    _generate(cfg)


def _generation_config_sampling(path: Path | None) -> dict[str, Any] | None:
    """`--generation-config`: the Sampling fields read from a transformers GenerationConfig."""
    if path is None:
        return None
    from transformers import GenerationConfig

    folder, name = (path, "generation_config.json") if path.is_dir() else (path.parent,
                                                                          path.name)
    try:
        gc = GenerationConfig.from_pretrained(folder, config_file_name=name)
    except OSError as e:
        raise ConfigError(f"--generation-config {path}: cannot read it ({e})") from None
    return asdict(Sampling.from_generation_config(gc))


def _generate(cfg: GenerateConfig) -> None:
    """Load the ensemble, decode every prompt, print the responses (n per prompt)."""
    from moalign.emorl.ensemble import parse_weights
    from moalign.emorl.manifest import EnsembleManifest, load_ensemble
    from moalign.evaluation.evaluate import ensemble_generate_fn

    texts = cfg.prompts + (read_prompt_file(Path(cfg.file)) if cfg.file is not None else [])
    run = Path(str(cfg.ensemble))
    manifest = EnsembleManifest.load(run)  # clear errors before loading any model
    spec, note = ((cfg.weights, None) if cfg.weights is not None
                  else manifest.default_weights())
    w = parse_weights(spec, manifest.objectives)  # (K,) validated
    if note:
        typer.echo(f"note: {note}", err=True)
    ens, _ = load_ensemble(run, device=cfg.device)
    generate_fn = ensemble_generate_fn(
        ens, w, level=cfg.level, sampling=cfg.sampling,
        system=cfg.system if cfg.system is not None else manifest.system)
    responses = generate_fn(texts, cfg.sampling.seed or 0)
    named = {n: round(float(x), 6) for n, x in zip(manifest.objectives, w.tolist(), strict=True)}
    per_prompt = cfg.sampling.num_return_sequences
    for i, response in enumerate(responses):
        if cfg.as_json:
            typer.echo(json.dumps({"prompt": texts[i // per_prompt], "response": response,
                                   "index": i % per_prompt, "weights": named,
                                   "level": cfg.level}, ensure_ascii=False))
        else:
            typer.echo(response)


# ----------------------------------------------------------------------------- ensembles


@dataclass
class EnsembleCreateConfig:
    """`moalign ensemble create RUN_DIR`: a base model plus one LoRA expert per objective."""

    base: str | None = None  # bundled id, local folder or HF id (required)
    experts: dict[str, str] = field(default_factory=dict)  # objective -> adapter dir/SCST out_dir
    system: str | None = None  # system prompt for generation
    copy: bool = True  # copy adapters into the run dir (false: reference them where they are)

    def validate(self) -> None:
        require(self.base is not None, "give --base MODEL (bundled id, folder or HF id)")
        require(bool(self.experts), "give at least one --expert name=PATH")


@dataclass
class EnsembleAddConfig:
    """`moalign ensemble add RUN_DIR`: one more objective's expert."""

    objective: str | None = None  # the new objective's name (required)
    adapter: str | None = None  # its LoRA adapter folder or SCST out_dir (required)
    copy: bool = True  # copy the adapter into the run dir

    def validate(self) -> None:
        require(self.objective is not None and self.adapter is not None,
                "give --objective NAME and --adapter DIR")


@ensemble_app.command("create")
def ensemble_create_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory to hold ensemble.json."),
    overrides: list[str] | None = typer.Argument(
        None, help="key=value overrides of EnsembleCreateConfig, e.g. experts.empathy=DIR"),
    base: str | None = shortcut("--base", help="Base model: bundled id, folder or HF id."),
    expert: list[str] | None = shortcut("--expert", help="name=ADAPTER_DIR (repeatable, or "
                                        "a=DIR,b=DIR); an SCST out_dir works too."),
    system: str | None = shortcut("--system", help="System prompt for generation."),
    copy: bool | None = shortcut("--copy/--link", help="Copy adapters into the run dir (default), "
                                 "or reference them where they are."),
    force: bool = typer.Option(False, "--force", help="Replace an existing ensemble.json."),
    config: ConfigOption = None,
) -> None:
    """Assemble an ensemble from trained experts (e.g. `moalign train-expert` outputs)."""
    from moalign.emorl.manifest import create_ensemble

    experts = (parse_pairs(_comma_pairs(expert), "name=PATH", "--expert", raw=True,
                           unique=True) if expert else None)
    cfg = command_config(EnsembleCreateConfig, config, overrides, base=base, experts=experts,
                         system=system, copy=copy)
    manifest = create_ensemble(run_dir, str(cfg.base), cfg.experts, cfg.system, cfg.copy, force)
    typer.echo(f"ensemble {run_dir} with experts {manifest.objectives}; next: "
               f"`moalign search --ensemble {run_dir}`")


def _comma_pairs(items: list[str]) -> list[str]:
    """`--expert a=X,b=Y` as two pairs (like `--weights`); a comma inside a path is kept (a part
    without `=` continues the previous path)."""
    out: list[str] = []
    for item in items:
        for part in item.split(","):
            if "=" in part or not out:
                out.append(part)
            else:
                out[-1] += "," + part
    return out


@ensemble_app.command("add")
def ensemble_add_cmd(
    run_dir: EnsembleArgument,
    overrides: list[str] | None = typer.Argument(
        None, help="key=value overrides of EnsembleAddConfig."),
    objective: str | None = shortcut("--objective", help="The new objective's name."),
    adapter: Path | None = shortcut("--adapter", help="Its LoRA adapter folder (or SCST out_dir)."),
    copy: bool | None = shortcut("--copy/--link", help="Copy the adapter into the run dir "
                                 "(default)."),
    config: ConfigOption = None,
) -> None:
    """Add an objective's expert without retraining (or touching) the others."""
    from moalign.emorl.manifest import add_expert

    cfg = command_config(EnsembleAddConfig, config, overrides, objective=objective,
                         adapter=adapter, copy=copy)
    objective = str(cfg.objective)
    manifest = add_expert(run_dir, objective, str(cfg.adapter), cfg.copy)
    typer.echo(f"added {objective!r}: experts now {manifest.objectives}. Search new weights with "
               f"`moalign search --ensemble {run_dir} fresh=true`")
    if manifest.best_weights:
        typer.echo(f"until then the stored best weights give {objective!r} weight 0")


@ensemble_app.command("show")
def ensemble_show_cmd(
    run_dir: EnsembleArgument,
) -> None:
    """Print the ensemble's base model, experts and best weights."""
    from moalign.emorl.manifest import EnsembleManifest

    manifest = EnsembleManifest.load(run_dir)
    typer.echo(f"base: {manifest.base}")
    for name, path in manifest.adapter_paths(run_dir).items():
        w = (manifest.best_weights or {}).get(name)
        typer.echo(f"  {name}: {path}" + (f"  (best weight {w:.4g})" if w is not None else ""))
    if manifest.system:
        typer.echo(f"system: {manifest.system}")


@ensemble_app.command("export")
def ensemble_export_cmd(
    run_dir: EnsembleArgument,
    out: Path | None = shortcut("--out", help="Output folder (RUN_DIR/export)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output folder."),
) -> None:
    """Write a self-describing, Hub-ready copy: experts, weights, system prompt, model card."""
    from moalign.emorl.export import export_ensemble

    folder = export_ensemble(run_dir, out, force)
    typer.echo(f"exported to {folder} (README.md model card, ensemble.json, experts/); upload "
               f"with `moalign ensemble push {run_dir} REPO_ID` or huggingface_hub.upload_folder")


@ensemble_app.command("push")
def ensemble_push_cmd(
    run_dir: EnsembleArgument,
    repo_id: str = typer.Argument(..., help="Hub model repo, e.g. you/counsel-ensemble."),
    out: Path | None = shortcut("--out", help="Export folder (RUN_DIR/export)."),
    private: bool | None = shortcut("--private/--public", help="Visibility of a new repo (Hub "
                                    "default: public)."),
) -> None:
    """Export the ensemble (see `ensemble export`) and upload it to the Hugging Face Hub."""
    from moalign.emorl.export import push_ensemble

    url = push_ensemble(run_dir, repo_id, out, private)
    typer.echo(f"pushed {run_dir} to {repo_id}: {url}")
