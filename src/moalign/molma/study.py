"""`moalign run` for a MOLMA study (`kind: molma`): the MOLMA paper's experiment in one config.

Stages top to bottom (same machinery as the EMORL study in `moalign.emorl.study`):

    train_reward_models   Bradley-Terry reward models          reward_models/<objective>/
    train_policies        MOLMA and the SO baselines per seed  seed_<s>/train/<method>/
    evaluate_policies     held-out prompts: untrained policy, MOLMA, SO-* × runs
                                                               eval/units/<system>/*.json
    compare_policies      win rates of MOLMA vs every other system per objective (ties = half)
                          and the per-prompt reward scatter    compare/
    summarise             mean ± std per objective            eval/table.json
    write_report                                               report/
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from moalign.core.config import embed, fill, require
from moalign.core.io import atomic_write_json
from moalign.core.naming import objective_name, slug
from moalign.evaluation.evaluate import GenerateFn, policy_generate_fn
from moalign.evaluation.win_rates import win_rate_table
from moalign.models import load_adapter, load_policy
from moalign.molma.config import MolmaConfig, held_out_prompts, prompt_splits
from moalign.molma.trainer import train_molma
from moalign.rewards.heads import read_meta
from moalign.rewards.reward_models import (
    EMBEDDED_PREFS,
    RMConfig,
    ensure_embedded_reward_model,
    train_reward_model,
)
from moalign.runs import stages
from moalign.runs.layout import RunDir
from moalign.runs.plots import plot_reward_scatter

MOLMA_SET_BY = {
    "policy": "the study sets it from policy.name",
    "objectives": "the study sets it from objectives (its reward models: their folders)",
    "mode": "the study sets it (molma, or the baseline being trained)",
    "so_objective": "the study sets it from the baseline so:<objective>",
    "system": "the study sets it from policy.system",
    "seed": "the study sets it from training_seeds",
    "out_dir": "the study sets it (seed_<s>/train/<method>)",
    "device": "the study sets it from policy.device",
}
"""`training` fields the study fills in for every MOLMA / SO run (`moalign.molma.trainer`)."""

RM_SET_BY = {
    "objective": "the study sets it from the reward model's name (an objective)",
    "out": "the study sets it (reward_models/<name>)",
}
"""`reward_models.<name>` fields the study fills in (`moalign.rewards.reward_models.RMConfig`)."""


SO_LABELS = {"so_weighted": "SO-weighted", "so_piecewise": "SO-piecewise"}
"""Labels of the weighted SO baselines (MOLMA Eqs. 4.1, 4.2); `so:<objective>` is the third."""


@dataclass
class MolmaStudyConfig:
    """`moalign run` for a MOLMA study: reward models, MOLMA + SO baselines, win rates, report."""

    kind: Literal["molma"] = "molma"
    name: str | None = None
    policy: stages.PolicySection = field(default_factory=stages.PolicySection)
    objectives: list[Any] = field(default_factory=lambda: ["helpfulness", "safety"])
    # objective name -> the Bradley-Terry reward model the study trains for it (MOLMA §3.2):
    # any RMConfig field except RM_SET_BY's; objectives without one use their scorer as is
    reward_models: dict[str, RMConfig] = embed(dict, RM_SET_BY)
    # MOLMA and its SO baselines (MOLMA Algorithm 1), including the prompt mix (prompts,
    # proportions, test_fraction): any MolmaConfig field except MOLMA_SET_BY's
    training: MolmaConfig = embed(MolmaConfig, MOLMA_SET_BY)
    training_seeds: list[int] | None = None  # seeds that train models; None: every eval seed
    baselines: list[str] = field(default_factory=lambda: [
        "so:helpfulness", "so:safety", "so_weighted", "so_piecewise"])
    evaluation: stages.EvaluationSection = field(default_factory=stages.EvaluationSection)
    out_dir: str = "runs/molma"
    workers: int = 1
    ray_address: str | None = None  # join an existing Ray cluster ("auto" or "ray://host:10001")
    gpus_per_job: float = 0.0  # GPUs each Ray training job reserves (fractions share a GPU)

    def validate(self) -> None:
        names = [objective_name(o) for o in self.objectives]
        require(len(names) >= 2, f"a MOLMA study needs >= 2 objectives, got {names}")
        require(self.workers >= 1, f"workers must be >= 1, got {self.workers}")
        require(self.gpus_per_job >= 0, f"gpus_per_job must be >= 0, got {self.gpus_per_job}")
        stages.check_seeds(self.training_seeds, "training_seeds")
        for b in self.baselines:
            ok = b in SO_LABELS or (b.startswith("so:") and b[3:] in names)
            require(ok, f"unknown baseline {b!r}; use so:<objective> (one of {names}), "
                    "so_weighted or so_piecewise")
        unknown = sorted(set(self.reward_models) - set(names))
        require(not unknown, f"reward_models {unknown} are not objectives {names}")
        # the run configs the study will build, checked now rather than stages later
        run_dir = Path(self.out_dir)
        for name in self.reward_models:
            rm_config(self, run_dir, name).validate()
        for method in self.methods:
            molma_config(self, run_dir, method, stages.training_seeds(self)[0]).validate()

    @classmethod
    def upgrade_saved(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A config.yaml saved before the study embedded the trainer configs, in today's shape:
        the old `data` section (prompts, proportions, test_fraction) moved into `training`,
        then as for EMORL (`training.extra` merged, `training.seeds` -> `training_seeds`)."""
        data = stages.upgrade_sections(data)
        old = data.pop("data", None)
        training = data.setdefault("training", {})
        if isinstance(old, dict) and isinstance(training, dict):
            training.update({k: v for k, v in old.items() if v is not None})
        return data

    @property
    def methods(self) -> list[str]:
        return ["molma", *self.baselines]


def method_label(method: str) -> str:
    if method == "molma":
        return "MOLMA"
    return SO_LABELS.get(method) or f"SO-{method[3:]}"


# ----------------------------------------------------------------------------- stages


def resolved_objectives(cfg: MolmaStudyConfig, run_dir: Path) -> list[Any]:
    """Objective specs, with the study's own reward models pointing at their folders."""
    out = []
    for spec in cfg.objectives:
        name = objective_name(spec)
        if name in cfg.reward_models:
            spec = {"kind": "reward_model", "path": str(RunDir(run_dir).reward_model(name)),
                    "name": name}
        out.append(spec)
    return out


def _reward_model(cfg: MolmaStudyConfig, run_dir: Path, name: str) -> dict[str, Any] | None:
    """Train a configured reward model, or make sure an embedded one exists; its metrics."""
    if name in cfg.reward_models:
        rm = rm_config(cfg, run_dir, name)
        rm.validate()
        return train_reward_model(rm)
    if name in EMBEDDED_PREFS:
        meta = read_meta(ensure_embedded_reward_model(name))
        return {k: meta.get(k) for k in ("val_accuracy", "train_accuracy", "n_train", "n_val")}
    return None


def train_reward_models(cfg: MolmaStudyConfig, run_dir: Path) -> None:
    def run() -> dict[str, Any]:
        out = {}
        for name in (objective_name(o) for o in cfg.objectives):
            metrics = _reward_model(cfg, run_dir, name)
            if metrics is not None:
                atomic_write_json(RunDir(run_dir).reward_model_metrics(name), metrics)
                out[name] = metrics.get("val_accuracy")
        return out

    stages.stage(run_dir, "reward_models", run)


def rm_config(cfg: MolmaStudyConfig, run_dir: Path, name: str) -> RMConfig:
    """The reward model the study trains for objective `name` (RM_SET_BY filled in)."""
    return fill(cfg.reward_models[name], RM_SET_BY, objective=name,
                out=str(RunDir(run_dir).reward_model(name)))


def molma_config(cfg: MolmaStudyConfig, run_dir: Path, method: str, seed: int) -> MolmaConfig:
    """One MOLMA / SO run of the study: `training` with the fields in MOLMA_SET_BY filled in."""
    mode = "so" if method.startswith("so:") else method
    return fill(cfg.training, MOLMA_SET_BY, policy=cfg.policy.name,
                objectives=resolved_objectives(cfg, run_dir), mode=mode,
                so_objective=method[3:] if mode == "so" else None, system=cfg.policy.system,
                seed=seed, device=cfg.policy.device,
                out_dir=str(RunDir(run_dir).seed(seed).policy(slug(method)).root))


def _train_unit(molma_cfg: MolmaConfig) -> dict[str, Any]:
    """Train one MOLMA / SO run unless its summary.json exists; resume from a checkpoint if any."""
    return stages.train_or_resume(train_molma, molma_cfg)


def train_policies(cfg: MolmaStudyConfig, run_dir: Path) -> None:
    def run() -> dict[str, Any]:
        jobs = [{"molma_cfg": molma_config(cfg, run_dir, m, s)}
                for s in stages.training_seeds(cfg) for m in cfg.methods]
        names = [f"{slug(m)} seed {s}" for s in stages.training_seeds(cfg) for m in cfg.methods]
        out = stages.fan_out(_train_unit, jobs, cfg.workers, names, cfg.ray_address,
                             cfg.gpus_per_job)
        return {n: {"seconds": r["seconds"], "iterations": r["iterations"]}
                for n, r in zip(names, out, strict=True)}

    stages.stage(run_dir, "train", run)


def molma_systems(cfg: MolmaStudyConfig) -> list[stages.System]:
    sampling, system = stages.evaluation_sampling(cfg.evaluation), cfg.policy.system

    def plain(adapter: str | None) -> Callable[[stages.LoadedModels], GenerateFn]:
        return lambda m: policy_generate_fn(m["policy"], sampling, system, adapter)

    def trained(method: str) -> stages.System:  # `finetune: full`: its own model and group
        key, full = slug(method), cfg.training.finetune == "full"
        return stages.System(key, method_label(method), f"full:{key}" if full else "adapters",
                             plain(None) if full else plain(key))

    return [stages.System("base", stages.base_label(cfg.policy.name), "adapters", plain(None)),
            *(trained(m) for m in cfg.methods)]


def _load_policies(cfg: MolmaStudyConfig, run_dir: Path, seed: int,
                   group: str = "adapters") -> stages.LoadedModels:
    """The base policy with every method's LoRA adapter, or one fully fine-tuned method's
    model (group `full:<method>`)."""
    if group.startswith("full:"):
        unit = RunDir(run_dir).seed(seed).policy(group.removeprefix("full:"))
        return {"policy": load_policy(str(unit.model), device=cfg.policy.device)}
    policy = load_policy(cfg.policy.name, device=cfg.policy.device)
    if cfg.training.finetune == "lora":
        for m in map(slug, cfg.methods):
            load_adapter(policy, RunDir(run_dir).seed(seed).policy(m).adapter, m)
    return {"policy": policy}


def eval_prompts(cfg: MolmaStudyConfig, run_dir: Path) -> list[str]:
    """Held-out prompts in the training mix's proportions (never trained on)."""
    mcfg = molma_config(cfg, run_dir, "molma", stages.training_seeds(cfg)[0])
    n = cfg.evaluation.test_prompts or sum(len(t) for t in prompt_splits(mcfg)[1])
    return held_out_prompts(mcfg, n, seed=0)


def evaluate_policies(cfg: MolmaStudyConfig, run_dir: Path) -> None:
    def run() -> dict[str, Any]:
        n = stages.run_units(
            cfg, run_dir, molma_systems(cfg), eval_prompts(cfg, run_dir),
            lambda seed, group: _load_policies(cfg, run_dir, stages.model_seed(cfg, seed), group),
            resolved_objectives(cfg, run_dir))
        return {"units_evaluated": n}

    stages.stage(run_dir, "evaluate", run)


def per_prompt_rewards(run_dir: Path, key: str, names: list[str]) -> list[list[float]]:
    """(N, K) rewards of every evaluated response of a system, ordered by (seed, run, prompt)."""
    rows: list[list[float]] = []
    for path in RunDir(run_dir).unit_files(key):
        unit = stages.read_json(path)
        rows += [list(r) for r in zip(*(unit["per_example"][n] for n in names), strict=True)]
    return rows


def compare(cfg: MolmaStudyConfig, run_dir: Path) -> dict[str, Any]:
    """compare/win_rates.json (MOLMA vs each system, per objective) and reward_scatter.png."""
    names = [objective_name(o) for o in cfg.objectives]
    systems = molma_systems(cfg)
    labels = {s.key: s.label for s in systems}
    scores = {labels[s.key]: np.asarray(per_prompt_rewards(run_dir, s.key, names))
              for s in systems}
    opponents = [labels[s.key] for s in systems if s.key != "molma"]
    table = win_rate_table(scores, names, [("MOLMA", o) for o in opponents])
    rates = {o: table[f"MOLMA vs {o}"] for o in opponents}
    out = {"model": "MOLMA", "objectives": names, "opponents": opponents, "rates": rates,
           "n_prompts": len(scores["MOLMA"])}
    atomic_write_json(RunDir(run_dir).win_rates, out)
    plot_reward_scatter({k: v[:, :2] for k, v in scores.items()}, names[:2],
                        RunDir(run_dir).reward_scatter)
    return {o: {n: round(w["win_rate"], 4) for n, w in r.items()} for o, r in rates.items()}


def training_costs(cfg: MolmaStudyConfig, run_dir: Path) -> dict[str, dict[str, list[float]]]:
    """Prompts consumed (iterations × memory) and seconds per method, one value per seed."""
    costs: dict[str, dict[str, list[float]]] = {}
    for s in stages.training_seeds(cfg):
        for m in map(slug, cfg.methods):
            summary = stages.read_json(RunDir(run_dir).seed(s).policy(m).summary)
            c = costs.setdefault(m, {"data": [], "seconds": []})
            c["data"].append(float(summary["iterations"] * cfg.training.memory))
            c["seconds"].append(float(summary["seconds"]))
    return costs


def run_molma_study(cfg: MolmaStudyConfig) -> Path:
    """Run (or resume) the whole MOLMA study; return the run directory."""
    t0 = time.perf_counter()
    run_dir = stages.start_run(cfg, "molma")
    train_reward_models(cfg, run_dir)
    train_policies(cfg, run_dir)
    evaluate_policies(cfg, run_dir)
    stages.stage(run_dir, "compare", lambda: compare(cfg, run_dir))
    stages.stage(run_dir, "summary", lambda: stages.summarise(
        cfg, run_dir, molma_systems(cfg), training_costs(cfg, run_dir),
        len(eval_prompts(cfg, run_dir))))
    stages.finish_study(run_dir, time.perf_counter() - t0)
    stages.say(f"MOLMA study done: {run_dir}")
    stages.write_report(run_dir)
    return run_dir
