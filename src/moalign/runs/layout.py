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
    RUN/eval/units/<system>/seed_<s>_run_<r>.json           one evaluated generation run
    RUN/eval/generations/<system>.jsonl  RUN/eval/table.json
    RUN/reward_models/<objective>/  RUN/compare/  RUN/human_eval/scores.json  (MOLMA, raters)
    RUN/report/report.html  report.md  figures/

A trained unit (`UnitDir`, a trainer's ``out_dir``) holds ``config.yaml``, ``metrics.jsonl``,
``adapter/``, ``checkpoint/`` and ``summary.json``. An ensemble folder made by
`moalign ensemble create` has the `SeedDir` layout (``ensemble.json`` + ``experts/``).

The types are small frozen dataclasses around a `Path`; they only name paths (nothing here
touches the disk except the ``*_files`` / ``seed_dirs`` listings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG_YAML = "config.yaml"
ENSEMBLE_JSON = "ensemble.json"
SUMMARY_JSON = "summary.json"
METRICS_JSONL = "metrics.jsonl"
SEED_PREFIX = "seed_"


def _seed_name(seed: int) -> str:
    return f"{SEED_PREFIX}{seed}"


@dataclass(frozen=True)
class _Dir:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # accept str roots too


@dataclass(frozen=True)
class UnitDir(_Dir):
    """One trained run (an SCST expert or baseline, a MOLMA / SO policy): a trainer's out_dir."""

    @property
    def config(self) -> Path:
        return self.root / CONFIG_YAML

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_JSONL

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY_JSON

    @property
    def value_adapter(self) -> Path:
        """MOLMA's critic: its LoRA value adapter ..."""
        return self.root / "value_adapter"

    @property
    def value_head(self) -> Path:
        """... and its value head."""
        return self.root / "value_head.safetensors"

    def seed(self, seed: int) -> UnitDir:
        """One seed of a multi-seed training command (`train-expert --seeds`)."""
        return UnitDir(self.root / _seed_name(seed))

    @property
    def seeds_summary(self) -> Path:
        return self.root / "seeds_summary.json"


@dataclass(frozen=True)
class SearchDir(_Dir):
    """The artifacts of one weight search (`moalign search`, a study's search stage)."""

    @property
    def config(self) -> Path:
        return self.root / CONFIG_YAML

    @property
    def results(self) -> Path:
        """Every evaluated point, appended as it is evaluated (the resume cache)."""
        return self.root / "results.jsonl"

    @property
    def fingerprint(self) -> Path:
        return self.root / "fingerprint.json"

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY_JSON

    @property
    def best_weights(self) -> Path:
        return self.root / "best_weights.json"

    @property
    def history(self) -> Path:
        return self.root / "history.json"

    @property
    def pareto(self) -> Path:
        return self.root / "pareto.json"

    @property
    def overview_png(self) -> Path:
        return self.root / "search_overview.png"

    @property
    def pareto_png(self) -> Path:
        return self.root / "pareto.png"

    @property
    def legacy_best(self) -> Path:
        """``best.json`` of early versions (read by the report when no summary exists)."""
        return self.root / "best.json"

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

    @property
    def ensemble_json(self) -> Path:
        return self.root / ENSEMBLE_JSON

    @property
    def experts_dir(self) -> Path:
        return self.root / "experts"

    @property
    def baselines_dir(self) -> Path:
        return self.root / "baselines"

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

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

    @property
    def search(self) -> SearchDir:
        return SearchDir(self.root / "search")


@dataclass(frozen=True)
class RunDir(_Dir):
    """A study's run directory (`moalign run`); see the module docstring for the tree."""

    # overview
    @property
    def config_yaml(self) -> Path:
        return self.root / CONFIG_YAML

    @property
    def study_json(self) -> Path:
        return self.root / "study.json"

    @property
    def ensemble_json(self) -> Path:
        """The first training seed's ensemble, published so `moalign generate -e RUN` works."""
        return self.root / ENSEMBLE_JSON

    @property
    def stages_dir(self) -> Path:
        return self.root / "stages"

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
    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    def eval_units(self, system: str) -> Path:
        return self.eval_dir / "units" / system

    def unit(self, system: str, seed: int, run: int) -> Path:
        """One evaluated (system, evaluation seed, generation run)."""
        return self.eval_units(system) / f"{_seed_name(seed)}_run_{run}.json"

    def unit_files(self, system: str) -> list[Path]:
        return sorted(self.eval_units(system).glob("*.json"))

    @property
    def generations_dir(self) -> Path:
        return self.eval_dir / "generations"

    def generations(self, system: str) -> Path:
        return self.generations_dir / f"{system}.jsonl"

    def generation_files(self) -> list[Path]:
        d = self.generations_dir
        return sorted(d.glob("*.jsonl")) if d.is_dir() else []

    @property
    def table(self) -> Path:
        return self.eval_dir / "table.json"

    # MOLMA and human evaluation
    def reward_model(self, objective: str) -> Path:
        return self.root / "reward_models" / objective

    def reward_model_metrics(self, objective: str) -> Path:
        return self.reward_model(objective) / "metrics.json"

    def reward_model_metric_files(self) -> list[Path]:
        return sorted(self.root.glob("reward_models/*/metrics.json"))

    @property
    def win_rates(self) -> Path:
        return self.root / "compare" / "win_rates.json"

    @property
    def reward_scatter(self) -> Path:
        return self.root / "compare" / "reward_scatter.png"

    @property
    def human_scores(self) -> Path:
        return self.root / "human_eval" / "scores.json"

    # report
    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def figures_dir(self) -> Path:
        return self.report_dir / "figures"

    @property
    def report_html(self) -> Path:
        return self.report_dir / "report.html"

    @property
    def report_md(self) -> Path:
        return self.report_dir / "report.md"
