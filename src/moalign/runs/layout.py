"""The layout of a run directory: every file and folder name of a run lives here, once.

A study (`moalign run`) writes::

    RUN/config.yaml  study.json  ensemble.json             resolved config, overview, the
                                                            first seed's ensemble (published)
    RUN/stages/<stage>.json                                 completion markers
    RUN/seed_<s>/ensemble.json                              that seed's ensemble manifest
    RUN/seed_<s>/experts/<objective>/                       one trained unit per expert (EMORL)
    RUN/seed_<s>/baselines/<method>/                        trained SCST baselines (EMORL)
    RUN/seed_<s>/train/<method>/                            MOLMA and SO policies (MOLMA)
    RUN/seed_<s>/search/                                    the weight search of that seed
    RUN/seed_<s>/evidence/                                  claim evidence (full_grid.json, ...)
    RUN/eval/units/<system>/seed_<s>_run_<r>.json           one evaluated generation run
    RUN/eval/generations/<system>.jsonl  RUN/eval/table.json
    RUN/reward_models/<objective>/  RUN/compare/  RUN/human_eval/scores.json  (MOLMA, raters)
    RUN/report/report.html  report.md  figures/

A trained unit (`UnitDir`, a trainer's ``out_dir``) holds ``config.yaml``, ``metrics.jsonl``,
``adapter/``, ``summary.json`` and its last checkpoints ``checkpoint-<step>/`` (`CheckpointDir`;
``.checkpoint-<step>.<kind>/`` while one is written, replaced or deleted; moalign 0.1 wrote one
pickled ``checkpoint/``, never loaded now). An ensemble folder made by
`moalign ensemble create` has the `SeedDir` layout (``ensemble.json`` + ``experts/``).

The types are small frozen dataclasses around a `Path`; they only name paths (nothing here
touches the disk except the ``*_files`` / ``seed_dirs`` listings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import overload

CONFIG_YAML = "config.yaml"
ENSEMBLE_JSON = "ensemble.json"
SUMMARY_JSON = "summary.json"
METRICS_JSONL = "metrics.jsonl"
SEED_PREFIX = "seed_"
CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_TEMP_KINDS = ("deleting", "partial", "replaced")
"""A save writes `partial`, moves an existing folder of the same step aside as `replaced`, and
renames a checkpoint it prunes to `deleting` before removing it."""


def _seed_name(seed: int) -> str:
    return f"{SEED_PREFIX}{seed}"


@dataclass(frozen=True)
class _Dir:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # accept str roots too


class _Child:
    """A fixed file or folder of a directory type: ``UnitDir(p).adapter`` is ``p / "adapter"``."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    @overload
    def __get__(self, obj: None, owner: type[_Dir]) -> _Child: ...
    @overload
    def __get__(self, obj: _Dir, owner: type[_Dir]) -> Path: ...

    def __get__(self, obj: _Dir | None, owner: type[_Dir]) -> Path | _Child:
        return self if obj is None else obj.root.joinpath(*self.parts)


@dataclass(frozen=True)
class UnitDir(_Dir):
    """One trained run (an SCST expert or baseline, a MOLMA / SO policy): a trainer's out_dir."""

    config = _Child(CONFIG_YAML)
    metrics = _Child(METRICS_JSONL)
    adapter = _Child("adapter")
    model = _Child("model")
    """A fully fine-tuned policy (MOLMA `finetune: full`): model and tokenizer folder."""

    def checkpoint_at(self, step: int) -> Path:
        """The checkpoint saved at optimiser step `step` (HF Trainer's ``checkpoint-<step>``)."""
        return self.root / f"{CHECKPOINT_PREFIX}{step}"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """The numbered checkpoint folders on disk as (step, path), newest (highest step) first."""
        found = []
        for p in self.root.glob(f"{CHECKPOINT_PREFIX}*"):
            step = p.name[len(CHECKPOINT_PREFIX):]
            if p.is_dir() and step.isdigit():
                found.append((int(step), p))
        return sorted(found, reverse=True)

    def checkpoint_temp(self, step: int, kind: str) -> Path:
        """A checkpoint folder in transit: `kind` is one of `CHECKPOINT_TEMP_KINDS`."""
        return self.root / f".{CHECKPOINT_PREFIX}{step}.{kind}"

    def checkpoint_temps(self) -> list[tuple[int, str, Path]]:
        """Checkpoint folders left in transit by an interrupted save, as (step, kind, path)."""
        found = []
        for p in self.root.glob(f".{CHECKPOINT_PREFIX}*"):
            step, _, kind = p.name[len(CHECKPOINT_PREFIX) + 1:].partition(".")
            if p.is_dir() and step.isdigit() and kind in CHECKPOINT_TEMP_KINDS:
                found.append((int(step), kind, p))
        return sorted(found)

    legacy_checkpoint = _Child("checkpoint")
    """moalign 0.1's single checkpoint folder (``state.pt`` is a pickle: never loaded)."""

    summary = _Child(SUMMARY_JSON)
    value_adapter = _Child("value_adapter")
    """MOLMA's critic: its LoRA value adapter ..."""

    value_head = _Child("value_head.safetensors")
    """... and its value head."""

    def seed(self, seed: int) -> UnitDir:
        """One seed of a multi-seed training command (`train-expert --seeds`)."""
        return UnitDir(self.root / _seed_name(seed))

    seeds_summary = _Child("seeds_summary.json")


@dataclass(frozen=True)
class CheckpointDir(_Dir):
    """One training checkpoint (`moalign.core.checkpoint`); no file in it is a pickle."""

    state_json = _Child("state.json")
    """Step, optimiser hyper-parameters and counters, cursors, RNG scalars, extra state."""

    state_tensors = _Child("state.safetensors")
    """The tensors `state_json` refers to (optimiser moments, RNG streams)."""

    manifest = _Child("manifest.json")
    """Size and sha256 of every other file; written last, so its presence means complete."""

    def adapter(self, name: str) -> Path:
        """The LoRA weights of adapter `name`."""
        return self.root / "adapters" / f"{name}.safetensors"

    def module(self, name: str) -> Path:
        """Another trained module (a value head, a fully fine-tuned model)."""
        return self.root / "modules" / f"{name}.safetensors"


@dataclass(frozen=True)
class SearchDir(_Dir):
    """The artifacts of one weight search (`moalign search`, a study's search stage)."""

    config = _Child(CONFIG_YAML)
    results = _Child("results.jsonl")
    """Every evaluated point, appended as it is evaluated (the resume cache)."""

    fingerprint = _Child("fingerprint.json")
    summary = _Child(SUMMARY_JSON)
    best_weights = _Child("best_weights.json")
    history = _Child("history.json")
    pareto = _Child("pareto.json")
    overview_png = _Child("search_overview.png")
    pareto_png = _Child("pareto.png")
    legacy_best = _Child("best.json")
    """``best.json`` of early versions (read by the report when no summary exists)."""

    def iteration_png(self, iteration: int) -> Path:
        return self.root / f"search_iter_{iteration:02d}.png"

    def iteration_pngs(self) -> list[Path]:
        return sorted(self.root.glob("search_iter_*.png"))

    def derived(self) -> tuple[Path, ...]:
        """Files rebuilt from the results (removed when a search starts over)."""
        return (self.best_weights, self.summary, self.history, self.pareto, self.overview_png,
                self.pareto_png)


@dataclass(frozen=True)
class SeedDir(_Dir):
    """The models of one training seed (also the layout of a standalone ensemble folder)."""

    ensemble_json = _Child(ENSEMBLE_JSON)
    experts_dir = _Child("experts")
    baselines_dir = _Child("baselines")
    train_dir = _Child("train")

    def expert(self, objective: str) -> UnitDir:
        return UnitDir(self.experts_dir / objective)

    def baseline(self, method: str) -> UnitDir:
        return UnitDir(self.baselines_dir / method)

    def policy(self, method: str) -> UnitDir:
        """A MOLMA study's trained policy (MOLMA or an SO baseline), by method key."""
        return UnitDir(self.train_dir / method)

    def expert_entry(self, objective: str) -> str:
        """The manifest entry of an expert's adapter, relative to this folder."""
        return self.expert(objective).adapter.relative_to(self.root).as_posix()

    export = _Child("export")
    """`moalign ensemble export`'s default output: a Hub-ready copy of this ensemble."""

    model_card = _Child("README.md")
    """The model card of an exported ensemble (the Hub shows README.md)."""

    @property
    def search(self) -> SearchDir:
        return SearchDir(self.root / "search")

    @property
    def evidence(self) -> EvidenceDir:
        """The study's claim evidence for this seed (`moalign.emorl.evidence`)."""
        return EvidenceDir(self.root / "evidence")


@dataclass(frozen=True)
class EvidenceDir(_Dir):
    """Extra stages of an EMORL study's `evidence:` section (`moalign.emorl.evidence`)."""

    full_grid_json = _Child("full_grid.json")
    """C4: the full grid at the hierarchical search's final step vs the search."""

    add_objective_json = _Child("add_objective.json")
    """C6: an objective added later vs the study that had it from the start."""

    @property
    def full_grid(self) -> SearchDir:
        """The full grid's own search folder (its results.jsonl is its resume cache)."""
        return SearchDir(self.root / "full_grid")

    @property
    def before(self) -> SeedDir:
        """C6's ensemble without the added objective (ensemble.json + search/)."""
        return SeedDir(self.root / "add_objective" / "before")

    @property
    def after(self) -> SeedDir:
        """C6's ensemble after adding the objective's expert."""
        return SeedDir(self.root / "add_objective" / "after")

    def added_expert(self, objective: str) -> UnitDir:
        """The expert trained later for the added objective."""
        return UnitDir(self.root / "add_objective" / "experts" / objective)


@dataclass(frozen=True)
class RunDir(_Dir):
    """A study's run directory (`moalign run`); see the module docstring for the tree."""

    # overview
    config_yaml = _Child(CONFIG_YAML)
    study_json = _Child("study.json")
    ensemble_json = _Child(ENSEMBLE_JSON)
    """The first training seed's ensemble, published so `moalign generate -e RUN` works."""

    stages_dir = _Child("stages")

    def stage_marker(self, name: str) -> Path:
        return self.stages_dir / f"{name}.json"

    def stage_markers(self) -> list[Path]:
        return sorted(self.stages_dir.glob("*.json")) if self.stages_dir.is_dir() else []

    # training seeds
    def seed(self, seed: int) -> SeedDir:
        return SeedDir(self.root / _seed_name(seed))

    def seed_dirs(self) -> list[SeedDir]:
        """The seed folders present on disk, sorted by name."""
        return [SeedDir(p) for p in sorted(self.root.glob(f"{SEED_PREFIX}*")) if p.is_dir()]

    def published_entry(self, seed: int, entry: str) -> str:
        """A seed manifest's relative adapter entry, made relative to the run directory."""
        return f"{_seed_name(seed)}/{entry}"

    @property
    def search(self) -> SearchDir:
        """A search run on the study folder itself (`moalign search -e RUN`)."""
        return SearchDir(self.root / "search")

    # evaluation
    eval_dir = _Child("eval")

    def eval_units(self, system: str) -> Path:
        return self.eval_dir / "units" / system

    def unit(self, system: str, seed: int, run: int) -> Path:
        """One evaluated (system, evaluation seed, generation run)."""
        return self.eval_units(system) / f"{_seed_name(seed)}_run_{run}.json"

    def unit_files(self, system: str) -> list[Path]:
        return sorted(self.eval_units(system).glob("*.json"))

    generations_dir = _Child("eval", "generations")

    def generations(self, system: str) -> Path:
        return self.generations_dir / f"{system}.jsonl"

    def generation_files(self) -> list[Path]:
        d = self.generations_dir
        return sorted(d.glob("*.jsonl")) if d.is_dir() else []

    table = _Child("eval", "table.json")

    # MOLMA and human evaluation
    def reward_model(self, objective: str) -> Path:
        return self.root / "reward_models" / objective

    def reward_model_metrics(self, objective: str) -> Path:
        return self.reward_model(objective) / "metrics.json"

    def reward_model_metric_files(self) -> list[Path]:
        return sorted(self.root.glob("reward_models/*/metrics.json"))

    win_rates = _Child("compare", "win_rates.json")
    reward_scatter = _Child("compare", "reward_scatter.png")
    human_scores = _Child("human_eval", "scores.json")

    # report
    report_dir = _Child("report")

    figures_dir = _Child("report", "figures")
    report_html = _Child("report", "report.html")
    report_md = _Child("report", "report.md")
    claims_md = _Child("report", "claims.md")
    """The claims table alone as Markdown (`moalign.runs.claims`), for the README."""
