"""Aggregation commands: `search`, `generate`, and `ensemble create|add|show`.

EMORL's scalability (B2): an ensemble is a base model plus one LoRA expert per objective listed
in `RUN_DIR/ensemble.json`; adding an objective adds one expert and never touches the others.
Its explainability and user control (B1): `moalign generate --weights reflection=0.8,...` picks
the trade-off at inference time, without retraining.

Heavy imports (torch, transformers) happen inside the command bodies so `moalign --help` is fast.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import typer

from moalign.cli import app

ensemble_app = typer.Typer(help="Assemble ensembles of LoRA experts (one per objective).",
                           no_args_is_help=True)
app.add_typer(ensemble_app, name="ensemble")

OBJECTIVE_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")  # same rule as moalign.aggregation adapters


# ----------------------------------------------------------------------------- search


@app.command("search")
def search_cmd(
    ensemble: Path | None = typer.Option(None, "--ensemble", "-e",
                                         help="Run directory holding ensemble.json."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML SearchConfig."),
    overrides: list[str] | None = typer.Argument(
        None, help="key=value overrides, e.g. method=grid grid_step=0.25 level=logits "
                   "iterations=5 n_prompts=16 objectives=[reflection,empathy,fluency]"),
) -> None:
    """Search aggregation weights (hierarchical grid search, EMORL Algorithm 1)."""
    from moalign.core.config import load_config
    from moalign.emorl.manifest import EnsembleManifest
    from moalign.emorl.weight_search import SearchConfig, describe_iteration, run_search

    extra = [f"ensemble={json.dumps(str(ensemble))}"] if ensemble is not None else []
    cfg = load_config(SearchConfig, config, [*(overrides or []), *extra])

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


def resolve_weights(spec: str | None, manifest: Any) -> tuple[Any, str | None]:
    """Weights (K,) from ``--weights``, else the manifest's best weights, else uniform.

    Returns (weights, note) where the note says where default weights came from.
    """
    from moalign.emorl.ensemble import parse_weights

    names = manifest.objectives
    if spec is not None:
        return parse_weights(spec, names), None
    best = manifest.best_weights or {}
    if best:
        known = {n: float(best.get(n, 0.0)) for n in names}
        return parse_weights(known, names), "using the ensemble's searched best weights"
    note = ("no searched weights in ensemble.json (run `moalign search`); using uniform "
            "weights")
    return parse_weights({n: 1.0 / len(names) for n in names}, names), note


@app.command("generate")
def generate_cmd(
    prompts: list[str] | None = typer.Argument(None, help="Prompt texts (client statements)."),
    ensemble: Path = typer.Option(..., "--ensemble", "-e",
                                  help="Run directory holding ensemble.json."),
    weights: str | None = typer.Option(
        None, "--weights", "-w", help="Per-objective weights, e.g. reflection=0.8,empathy=0.5,"
                                      "fluency=0.1 (omitted names get 0). Default: the "
                                      "searched best weights, else uniform."),
    level: str = typer.Option("states", "--level", help="Aggregation: states, logits, params."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
    sample: bool = typer.Option(False, "--sample/--greedy", help="Sample or decode greedily."),
    temperature: float = typer.Option(1.0, "--temperature"),
    top_p: float = typer.Option(1.0, "--top-p"),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    system: str | None = typer.Option(None, "--system", help="System prompt (default: the "
                                                             "ensemble's)."),
    file: Path | None = typer.Option(None, "--file", "-f", help="More prompts: .txt (one per "
                                                                "line) or a table."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per prompt."),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Generate with a weighted ensemble: choose the objectives' trade-off without retraining."""
    from moalign.core.config import ConfigError
    from moalign.emorl.decoding import LEVELS
    from moalign.emorl.manifest import EnsembleManifest, load_ensemble
    from moalign.evaluation.evaluate import ensemble_generate_fn

    texts = list(prompts or []) + (read_prompt_file(file) if file is not None else [])
    if not texts:
        raise ConfigError('give prompt texts as arguments (moalign generate -e RUN "text") or '
                          "--file prompts.txt")
    if level not in LEVELS:
        raise ConfigError(f"--level {level!r} is not one of {list(LEVELS)}")
    manifest = EnsembleManifest.load(ensemble)  # clear errors before loading any model
    w, note = resolve_weights(weights, manifest)
    if note:
        typer.echo(f"note: {note}", err=True)
    ens, _ = load_ensemble(ensemble, device=device)
    generate_fn = ensemble_generate_fn(
        ens, w, level=level, max_new_tokens=max_new_tokens, do_sample=sample,
        temperature=temperature, top_p=top_p,
        system=system if system is not None else manifest.system)
    responses = generate_fn(texts, seed)
    named = {n: round(float(x), 6) for n, x in zip(manifest.objectives, w.tolist(), strict=True)}
    for prompt, response in zip(texts, responses, strict=True):
        if as_json:
            typer.echo(json.dumps({"prompt": prompt, "response": response, "weights": named,
                                   "level": level}, ensure_ascii=False))
        else:
            typer.echo(response)


# ----------------------------------------------------------------------------- ensembles


def adapter_folder(path: str | Path) -> Path:
    """A LoRA adapter folder: `path` itself, or `path/adapter` (an SCST trainer's out_dir)."""
    from moalign.core.errors import ModelNotFoundError

    path = Path(path).expanduser()
    for candidate in (path, path / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise ModelNotFoundError(f"{path} holds no LoRA adapter (adapter_config.json missing); pass "
                             "an adapter folder or an SCST run's out_dir")


def check_objective_name(name: str) -> None:
    from moalign.core.errors import ObjectiveError

    if not OBJECTIVE_NAME.match(name):
        raise ObjectiveError(f"objective name {name!r} may only use letters, digits, '_' and "
                             "'-' (it appears in --weights name=value lists)")
    if name in "lora_":  # PEFT would mistake the adapter's weights for LoRA prefixes
        raise ObjectiveError(f"objective name {name!r} is part of PEFT's 'lora_' prefix; "
                             "pick a longer name")


def place_adapter(run_dir: Path, name: str, source: Path, copy: bool) -> str:
    """The manifest entry for an expert: copied to experts/NAME/adapter, or referenced.

    An adapter already inside the run directory is referenced relatively, never copied.
    """
    from moalign.core.io import atomic_dir

    src = adapter_folder(source).resolve()
    root = run_dir.resolve()
    if src.is_relative_to(root):
        return str(src.relative_to(root))
    if not copy:
        return str(src)
    target = run_dir / "experts" / name / "adapter"
    if target.exists():
        raise FileExistsError(f"{target} already exists; remove it or pick another objective "
                              "name")
    with atomic_dir(target) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    return str(target.relative_to(run_dir))


def create_ensemble(run_dir: Path, base: str, experts: dict[str, Path], system: str | None,
                    copy: bool = True, force: bool = False) -> Any:
    """Write a new ensemble.json for `base` + experts (each copied into the run dir)."""
    from moalign.core.config import ConfigError
    from moalign.emorl.manifest import MANIFEST, EnsembleManifest

    if (run_dir / MANIFEST).exists() and not force:
        raise ConfigError(f"{run_dir / MANIFEST} already exists; add experts with `moalign "
                          "ensemble add`, or pass --force to replace it")
    if not experts:
        raise ConfigError("give at least one --expert name=PATH")
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = EnsembleManifest(base=base, system=system)
    for name, path in experts.items():
        check_objective_name(name)
        manifest.add_expert(name, place_adapter(run_dir, name, path, copy))
    manifest.save(run_dir)
    return manifest


def add_expert(run_dir: Path, name: str, adapter: Path, copy: bool = True) -> Any:
    """Add one objective's expert to an existing ensemble; existing experts are untouched.

    Searched best weights get weight 0 for the new objective, so the ensemble keeps generating
    exactly as before until the weights are searched again.
    """
    from moalign.core.errors import ObjectiveError
    from moalign.emorl.manifest import EnsembleManifest

    manifest = EnsembleManifest.load(run_dir)
    check_objective_name(name)
    if name in manifest.experts:
        raise ObjectiveError(f"the ensemble already has an expert for {name!r} (objectives: "
                             f"{manifest.objectives}); pick another name")
    manifest.add_expert(name, place_adapter(run_dir, name, adapter, copy))
    if manifest.best_weights:
        manifest.best_weights = {**manifest.best_weights, name: 0.0}
    manifest.save(run_dir)
    return manifest


def _parse_experts(items: list[str]) -> dict[str, Path]:
    from moalign.core.config import ConfigError

    experts: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"--expert {item!r} must look like name=PATH")
        if name.strip() in experts:
            raise ConfigError(f"--expert {name.strip()!r} given twice")
        experts[name.strip()] = Path(path.strip())
    return experts


@ensemble_app.command("create")
def ensemble_create_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory to hold ensemble.json."),
    base: str = typer.Option(..., "--base", help="Base model: bundled id, folder or HF id."),
    expert: list[str] = typer.Option(..., "--expert", help="name=ADAPTER_DIR (repeatable); an "
                                                           "SCST out_dir works too."),
    system: str | None = typer.Option(None, "--system", help="System prompt for generation."),
    copy: bool = typer.Option(True, "--copy/--link", help="Copy adapters into the run dir, or "
                                                          "reference them where they are."),
    force: bool = typer.Option(False, "--force", help="Replace an existing ensemble.json."),
) -> None:
    """Assemble an ensemble from trained experts (e.g. `moalign train-expert` outputs)."""
    manifest = create_ensemble(run_dir, base, _parse_experts(expert), system, copy, force)
    typer.echo(f"ensemble {run_dir} with experts {manifest.objectives}; next: "
               f"`moalign search --ensemble {run_dir}`")


@ensemble_app.command("add")
def ensemble_add_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory holding ensemble.json."),
    objective: str = typer.Option(..., "--objective", help="The new objective's name."),
    adapter: Path = typer.Option(..., "--adapter", help="Its LoRA adapter folder (or SCST "
                                                        "out_dir)."),
    copy: bool = typer.Option(True, "--copy/--link", help="Copy the adapter into the run dir."),
) -> None:
    """Add an objective's expert without retraining (or touching) the others."""
    manifest = add_expert(run_dir, objective, adapter, copy)
    typer.echo(f"added {objective!r}: experts now {manifest.objectives}. Search new weights with "
               f"`moalign search --ensemble {run_dir} fresh=true`")
    if manifest.best_weights:
        typer.echo(f"until then the stored best weights give {objective!r} weight 0")


@ensemble_app.command("show")
def ensemble_show_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory holding ensemble.json."),
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
