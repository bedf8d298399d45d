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

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from moalign.core.config import require
from moalign.core.io import atomic_write_json
from moalign.runs.stages import (
    EvaluationSection,
    PolicySection,
    System,
    base_label,
    check_seeds,
    fan_out,
    finish_study,
    model_seed,
    objective_name,
    read_json,
    run_units,
    say,
    seed_dir,
    stage,
    start_run,
    summarise,
    train_or_resume,
    training_seeds,
    write_report,
)

SO_LABELS = {"so_weighted": "SO-weighted", "so_piecewise": "SO-piecewise"}


@dataclass
class MolmaDataSection:
    prompts: list[Any] | None = None  # MolmaConfig.prompts (None: shipped help/safety prompts)
    proportions: list[float] | None = None  # mix proportions (None: MOLMA's 60/40)
    test_fraction: float = 0.1  # held out from every source for the evaluation


@dataclass
class MolmaTrainingSection:
    """Settings shared by MOLMA and its SO baselines (see `moalign.molma.trainer.MolmaConfig`)."""

    iterations: int = 100
    memory: int = 64
    minibatch: int = 8
    max_new_tokens: int = 64
    lr: float = 1e-6
    beta: float = 0.01
    combiner: Literal["aligned_mtl", "weighted_sum", "pcgrad"] = "aligned_mtl"
    critic: Literal["lora", "head"] = "lora"
    save_every: int = 10
    seeds: list[int] | None = None  # training seeds; None: every evaluation seed
    extra: dict[str, Any] = field(default_factory=dict)  # any other MolmaConfig field


@dataclass
class MolmaStudyConfig:
    """`moalign run` for a MOLMA study: reward models, MOLMA + SO baselines, win rates, report."""

    kind: Literal["molma"] = "molma"
    name: str | None = None
    policy: PolicySection = field(default_factory=PolicySection)
    objectives: list[Any] = field(default_factory=lambda: ["helpfulness", "safety"])
    reward_models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> RMConfig
    data: MolmaDataSection = field(default_factory=MolmaDataSection)
    training: MolmaTrainingSection = field(default_factory=MolmaTrainingSection)
    baselines: list[str] = field(default_factory=lambda: [
        "so:helpfulness", "so:safety", "so_weighted", "so_piecewise"])
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    out_dir: str = "runs/molma"
    workers: int = 1
    ray_address: str | None = None  # join an existing Ray cluster ("auto" or "ray://host:10001")
    gpus_per_job: float = 0.0  # GPUs each Ray training job reserves (fractions share a GPU)

    def validate(self) -> None:
        from moalign.molma.trainer import MolmaConfig
        from moalign.rewards.reward_models import RMConfig

        names = [objective_name(o) for o in self.objectives]
        require(len(names) >= 2, f"a MOLMA study needs >= 2 objectives, got {names}")
        require(self.workers >= 1, f"workers must be >= 1, got {self.workers}")
        require(self.gpus_per_job >= 0, f"gpus_per_job must be >= 0, got {self.gpus_per_job}")
        check_seeds(self.training.seeds, "training.seeds")
        for b in self.baselines:
            ok = b in SO_LABELS or (b.startswith("so:") and b[3:] in names)
            require(ok, f"unknown baseline {b!r}; use so:<objective> (one of {names}), "
                    "so_weighted or so_piecewise")
        unknown = sorted(set(self.reward_models) - set(names))
        require(not unknown, f"reward_models {unknown} are not objectives {names}")
        rm_fields = {f.name for f in dataclasses.fields(RMConfig)} - {"out", "objective"}
        for n, spec in self.reward_models.items():
            bad = sorted(set(spec) - rm_fields)
            require(not bad, f"reward_models.{n}: unknown key(s) {bad}; valid: {sorted(rm_fields)}")
        valid = {f.name for f in dataclasses.fields(MolmaConfig)}
        bad = sorted(set(self.training.extra) - valid)
        require(not bad, f"training.extra: unknown MolmaConfig key(s) {bad}")

    @property
    def methods(self) -> list[str]:
        return ["molma", *self.baselines]


def method_key(method: str) -> str:
    return method.replace(":", "_")


def method_label(method: str) -> str:
    if method == "molma":
        return "MOLMA"
    return SO_LABELS.get(method) or f"SO-{method[3:]}"


# ----------------------------------------------------------------------------- stages


def rm_dir(run_dir: Path, name: str) -> Path:
    return run_dir / "reward_models" / name


def resolved_objectives(cfg: MolmaStudyConfig, run_dir: Path) -> list[Any]:
    """Objective specs, with the study's own reward models pointing at their folders."""
    out = []
    for spec in cfg.objectives:
        name = objective_name(spec)
        if name in cfg.reward_models:
            spec = {"kind": "reward_model", "path": str(rm_dir(run_dir, name)), "name": name}
        out.append(spec)
    return out


def _reward_model(cfg: MolmaStudyConfig, run_dir: Path, name: str) -> dict[str, Any] | None:
    """Train a configured reward model, or make sure an embedded one exists; its metrics."""
    from moalign.rewards.heads import read_meta
    from moalign.rewards.reward_models import (
        EMBEDDED_PREFS,
        RMConfig,
        ensure_embedded_reward_model,
        train_reward_model,
    )

    if name in cfg.reward_models:
        rm = RMConfig(objective=name, out=str(rm_dir(run_dir, name)), **cfg.reward_models[name])
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
                atomic_write_json(rm_dir(run_dir, name) / "metrics.json", metrics)
                out[name] = metrics.get("val_accuracy")
        return out

    stage(run_dir, "reward_models", run)


def molma_config(cfg: MolmaStudyConfig, run_dir: Path, method: str, seed: int) -> Any:
    from moalign.molma.trainer import MolmaConfig

    t, d = cfg.training, cfg.data
    mode = "so" if method.startswith("so:") else method
    optional = {k: v for k, v in (("prompts", d.prompts), ("proportions", d.proportions))
                if v is not None}
    common = {f.name: getattr(t, f.name) for f in dataclasses.fields(t)
              if f.name not in ("extra", "seeds")}
    return MolmaConfig(
        policy=cfg.policy.name, objectives=resolved_objectives(cfg, run_dir), mode=mode,
        so_objective=method[3:] if mode == "so" else None, test_fraction=d.test_fraction,
        system=cfg.policy.system, seed=seed, device=cfg.policy.device,
        out_dir=str(seed_dir(run_dir, seed) / "train" / method_key(method)),
        **optional, **common, **t.extra)


def _train_unit(molma_cfg: Any) -> dict[str, Any]:
    """Train one MOLMA / SO run unless its summary.json exists; resume from a checkpoint if any."""
    from moalign.molma.trainer import train_molma

    return train_or_resume(train_molma, molma_cfg)


def train_policies(cfg: MolmaStudyConfig, run_dir: Path) -> None:
    def run() -> dict[str, Any]:
        jobs = [{"molma_cfg": molma_config(cfg, run_dir, m, s)}
                for s in training_seeds(cfg) for m in cfg.methods]
        names = [f"{method_key(m)} seed {s}" for s in training_seeds(cfg) for m in cfg.methods]
        out = fan_out(_train_unit, jobs, cfg.workers, names, cfg.ray_address,
                      cfg.gpus_per_job)
        return {n: {"seconds": r["seconds"], "iterations": r["iterations"]}
                for n, r in zip(names, out, strict=True)}

    stage(run_dir, "train", run)


def molma_systems(cfg: MolmaStudyConfig) -> list[System]:
    from moalign.evaluation.evaluate import policy_generate_fn

    e = cfg.evaluation
    gen = {"max_new_tokens": e.max_new_tokens, "do_sample": e.do_sample,
           "temperature": e.temperature, "top_p": e.top_p, "system": cfg.policy.system}

    def plain(adapter: str | None) -> Any:
        return lambda m: policy_generate_fn(m["policy"], adapter=adapter, **gen)

    return [System("base", base_label(cfg.policy.name), "adapters", plain(None)),
            *(System(method_key(m), method_label(m), "adapters", plain(method_key(m)))
              for m in cfg.methods)]


def _load_policies(cfg: MolmaStudyConfig, run_dir: Path, seed: int) -> dict[str, Any]:
    from moalign.models import load_adapter, load_policy

    policy = load_policy(cfg.policy.name, device=cfg.policy.device)
    for m in map(method_key, cfg.methods):
        load_adapter(policy, seed_dir(run_dir, seed) / "train" / m / "adapter", m)
    return {"policy": policy}


def eval_prompts(cfg: MolmaStudyConfig, run_dir: Path) -> list[str]:
    """Held-out prompts in the training mix's proportions (never trained on)."""
    from moalign.molma.trainer import held_out_prompts, prompt_splits

    mcfg = molma_config(cfg, run_dir, "molma", training_seeds(cfg)[0])
    n = cfg.evaluation.test_prompts or sum(len(t) for t in prompt_splits(mcfg)[1])
    return held_out_prompts(mcfg, n, seed=0)


def evaluate_policies(cfg: MolmaStudyConfig, run_dir: Path) -> None:
    def run() -> dict[str, Any]:
        n = run_units(cfg, run_dir, molma_systems(cfg), eval_prompts(cfg, run_dir),
                      lambda seed, group: _load_policies(cfg, run_dir, model_seed(cfg, seed)),
                      resolved_objectives(cfg, run_dir))
        return {"units_evaluated": n}

    stage(run_dir, "evaluate", run)


def per_prompt_rewards(run_dir: Path, key: str, names: list[str]) -> list[list[float]]:
    """(N, K) rewards of every evaluated response of a system, ordered by (seed, run, prompt)."""
    rows: list[list[float]] = []
    for path in sorted((run_dir / "eval" / "units" / key).glob("*.json")):
        unit = json.loads(path.read_text(encoding="utf-8"))
        rows += [list(r) for r in zip(*(unit["per_example"][n] for n in names), strict=True)]
    return rows


def compare(cfg: MolmaStudyConfig, run_dir: Path) -> dict[str, Any]:
    """compare/win_rates.json (MOLMA vs each system, per objective) and reward_scatter.png."""
    import numpy as np

    from moalign.evaluation.win_rates import win_rate_table
    from moalign.runs.plots import plot_reward_scatter

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
    atomic_write_json(run_dir / "compare" / "win_rates.json", out)
    plot_reward_scatter({k: v[:, :2] for k, v in scores.items()}, names[:2],
                        run_dir / "compare" / "reward_scatter.png")
    return {o: {n: round(w["win_rate"], 4) for n, w in r.items()} for o, r in rates.items()}


def training_costs(cfg: MolmaStudyConfig, run_dir: Path) -> dict[str, dict[str, list[float]]]:
    """Prompts consumed (iterations × memory) and seconds per method, one value per seed."""
    costs: dict[str, dict[str, list[float]]] = {}
    for s in training_seeds(cfg):
        for m in map(method_key, cfg.methods):
            summary = read_json(seed_dir(run_dir, s) / "train" / m / "summary.json")
            c = costs.setdefault(m, {"data": [], "seconds": []})
            c["data"].append(float(summary["iterations"] * cfg.training.memory))
            c["seconds"].append(float(summary["seconds"]))
    return costs


def run_molma_study(cfg: MolmaStudyConfig) -> Path:
    """Run (or resume) the whole MOLMA study; return the run directory."""
    import time

    t0 = time.perf_counter()
    run_dir = start_run(cfg, "molma")
    train_reward_models(cfg, run_dir)
    train_policies(cfg, run_dir)
    evaluate_policies(cfg, run_dir)
    stage(run_dir, "compare", lambda: compare(cfg, run_dir))
    stage(run_dir, "summary", lambda: summarise(
        cfg, run_dir, molma_systems(cfg), training_costs(cfg, run_dir),
        len(eval_prompts(cfg, run_dir))))
    finish_study(run_dir, time.perf_counter() - t0)
    say(f"MOLMA study done: {run_dir}")
    write_report(run_dir)
    return run_dir
