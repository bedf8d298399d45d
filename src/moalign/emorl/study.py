"""`moalign run CONFIG.yaml`: one config runs a whole study and writes a report.

EMORL study (`kind: emorl`), stages top to bottom, for every training seed (`training_seeds`,
default: every evaluation seed trains its own models, the paper's protocol):

    train_experts      one SCST expert per objective          seed_<s>/experts/<objective>/
    build_ensembles    the ensemble manifest                  seed_<s>/ensemble.json
    search_weights     hierarchical grid search               seed_<s>/search/
    train_baselines    uniform weighted and DynaOpt SCST      seed_<s>/baselines/<method>/
    evaluate_systems   test split: untrained policy, experts, baselines, soup, logits, EMORL
                       × `runs` generation runs               eval/units/<system>/*.json
    evidence           optional (`evidence:`): full grid (C4),  seed_<s>/evidence/
                       an objective added later (C6)          (moalign.emorl.evidence)
    summarise          EMORL Table 1/2-shaped numbers         eval/table.json, eval/generations/
    write_report       HTML + Markdown                        report/

MOLMA study (`kind: molma`): reward models -> MOLMA and SO baselines -> evaluation -> win rates
-> report, in `moalign.molma.study` on the same stage machinery. `load_study` / `run_study`
dispatch on the config's `kind`.

Every stage writes its artifacts atomically into the run directory and leaves a completion marker
`stages/<stage>.json`; a marked stage is skipped, so an interrupted run resumes where it stopped
(inside a stage, finished units are skipped too: an expert with summary.json, a search with its
results.jsonl, an evaluated (system, seed, run)). The shared machinery is in `moalign.runs.stages`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from moalign.algorithms.grid_search import IterationRecord
from moalign.configs import shipped_config, shipped_config_names
from moalign.core.config import (
    ConfigError,
    embed,
    fill,
    load_config,
    load_yaml,
    parse_overrides,
    require,
)
from moalign.core.naming import check_name, objective_name
from moalign.data import load_prompts
from moalign.emorl.decoding import Level
from moalign.emorl.evidence import (
    AddObjective,
    EvidenceSection,
    add_objective_evidence,
    added_expert_config,
    full_grid_evidence,
)
from moalign.emorl.manifest import EnsembleManifest, load_ensemble
from moalign.emorl.scst import SCSTConfig, train_scst
from moalign.emorl.weight_search import SearchConfig, describe_iteration, run_search, search_cost
from moalign.evaluation.evaluate import GenerateFn, ensemble_generate_fn, policy_generate_fn
from moalign.models import load_adapter, load_policy
from moalign.molma.study import MolmaStudyConfig, run_molma_study
from moalign.runs.layout import RunDir
from moalign.runs.stages import (
    EvaluationSection,
    LoadedModels,
    PolicySection,
    System,
    base_label,
    check_seeds,
    evaluation_sampling,
    fan_out,
    finish_study,
    model_seed,
    read_json,
    run_units,
    say,
    stage,
    start_run,
    summarise,
    train_or_resume,
    training_seeds,
    upgrade_sections,
    write_report,
)
from moalign.sampling import Sampling

BASELINES = ("uniform", "dynaopt", "soup", "logits")
TRAINED_BASELINES = ("uniform", "dynaopt")
LEVEL_OF: dict[str, Level] = {"soup": "params", "logits": "logits", "emorl": "states"}


# ----------------------------------------------------------------------------- config


@dataclass
class DataSection:
    train: Any = "counsel_train"  # embedded name, file path, or a moalign.data.load_prompts dict
    val: Any = "counsel_val"
    test: Any = "counsel_test"
    column: str = "prompt"


SCST_SET_BY = {
    "policy": "the study sets it from policy.name",
    "objectives": "the study sets it (an expert's objective, or all of them for a baseline)",
    "method": "the study sets it (expert, or the uniform / dynaopt baseline)",
    "weights": "the study sets it (the uniform baseline weighs every objective 1/K)",
    "data": "the study sets it from data.train",
    "val_data": "the study sets it from data.val",
    "column": "the study sets it from data.column",
    "system": "the study sets it from policy.system",
    "seed": "the study sets it from training_seeds",
    "out_dir": "the study sets it (seed_<s>/experts/<objective>, seed_<s>/baselines/<method>)",
    "device": "the study sets it from policy.device",
}
"""`training` fields the study fills in for every SCST run (`moalign.emorl.scst.SCSTConfig`)."""

SEARCH_SET_BY = {
    "ensemble": "the study sets it (seed_<s>, the seed's experts)",
    "out_dir": "the study sets it (seed_<s>/search)",
    "objectives": "the study sets it from objectives",
    "data": "the study sets it from data.val",
    "column": "the study sets it from data.column",
    "seed": "the study sets it from training_seeds",
    "device": "the study sets it from policy.device",
}
"""`search` fields the study fills in for every search (`moalign.emorl.weight_search`)."""


@dataclass
class StudyConfig:
    """`moalign run` for an EMORL study: experts, search, baselines, evaluation, report."""

    kind: Literal["emorl"] = "emorl"
    name: str | None = None
    policy: PolicySection = field(default_factory=PolicySection)
    objectives: list[Any] = field(default_factory=lambda: ["reflection", "empathy", "fluency"])
    data: DataSection = field(default_factory=DataSection)
    # SCST (EMORL §5.1) of the experts and the uniform / DynaOpt baselines: any SCSTConfig
    # field except the ones in SCST_SET_BY
    training: SCSTConfig = embed(SCSTConfig, SCST_SET_BY)
    training_seeds: list[int] | None = None  # seeds that train models; None: every eval seed
    # the weight search (EMORL Algorithm 1): any SearchConfig field except SEARCH_SET_BY's
    search: SearchConfig = embed(SearchConfig, SEARCH_SET_BY)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    # the logits baseline: `probs` = Σ w_i·p_i / Σ w_i (a mixture of the experts' next-token
    # distributions); `raw` = Σ w_i·logits_i (EMORL §11.2) equals EMORL `states` exactly for a
    # bias-free linear LM head, so a study refuses it next to the states row it would duplicate
    logits_space: Literal["raw", "probs"] = "probs"
    # how the EMORL (states) system decodes the test prompts: `evaluation` = like every other
    # system (the `evaluation` section's sampling), `argmax` = greedily, token = argmax(logits)
    # as EMORL Eq. 2 and the authors' code do (every generation run then repeats one output)
    emorl_decoding: Literal["evaluation", "argmax"] = "evaluation"
    out_dir: str = "runs/emorl"
    workers: int = 1  # > 1: train experts / baselines as parallel Ray jobs
    ray_address: str | None = None  # join an existing Ray cluster ("auto" or "ray://host:10001")
    gpus_per_job: float = 0.0  # GPUs each Ray training job reserves (fractions share a GPU)
    # extra stages that test the papers' claims (full grid C4, adding an objective C6, the MOLMA
    # run for C5): moalign.emorl.evidence.EvidenceSection; null = none
    evidence: EvidenceSection | None = None

    def validate(self) -> None:
        names = [objective_name(o) for o in self.objectives]
        require(len(names) >= 2, f"an EMORL study needs >= 2 objectives, got {names}")
        require(len(set(names)) == len(names), f"objective names repeat: {names}")
        for n in names:
            check_name("objective", n)
        bad = sorted(set(self.baselines) - set(BASELINES))
        require(not bad, f"unknown baseline(s) {bad}; choose from {list(BASELINES)}")
        require(self.workers >= 1, f"workers must be >= 1, got {self.workers}")
        require("logits" not in self.baselines or self.logits_space != "raw",
                "logits_space: raw makes the logits baseline equal the EMORL states row (a "
                "bias-free linear LM head gives Σ w·logits = lm_head(Σ w·h)); use "
                "logits_space: probs")
        require(self.gpus_per_job >= 0, f"gpus_per_job must be >= 0, got {self.gpus_per_job}")
        check_seeds(self.training_seeds, "training_seeds")
        # the run configs the study will build, checked now rather than stages later
        seed, out = training_seeds(self)[0], Path(self.out_dir)
        scst_config(self, self.objectives[:1], "expert", seed, out).validate()
        for method in (b for b in self.baselines if b in TRAINED_BASELINES):
            scst_config(self, self.objectives, method, seed, out).validate()
        search_config(self, seed, out).validate()
        if self.evidence is not None:
            self.evidence.check_study(names, self.search.method)

    @classmethod
    def upgrade_saved(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A config.yaml saved before the study embedded the trainer configs, in today's shape:
        `training.extra` / `search.extra` merged into their sections, `training.seeds` ->
        `training_seeds`."""
        return upgrade_sections(data)

    @property
    def objective_names(self) -> list[str]:
        return [objective_name(o) for o in self.objectives]


# ----------------------------------------------------------------------------- EMORL stages


def scst_config(cfg: StudyConfig, objectives: list[Any], method: str, seed: int,
                out_dir: Path) -> SCSTConfig:
    """One SCST run of the study: `training` with the fields in SCST_SET_BY filled in."""
    return fill(cfg.training, SCST_SET_BY, policy=cfg.policy.name, objectives=list(objectives),
                method=method, weights=None, data=cfg.data.train, val_data=cfg.data.val,
                column=cfg.data.column, system=cfg.policy.system, seed=seed,
                out_dir=str(out_dir), device=cfg.policy.device)


def _train_scst_unit(scst_cfg: SCSTConfig) -> dict[str, Any]:
    """Train one SCST run unless its summary.json exists; resume from a checkpoint if any."""
    return train_or_resume(train_scst, scst_cfg)


def train_expert_stage(cfg: StudyConfig, objective: Any, run_dir: Path,
                       seed: int | None = None) -> dict[str, Any]:
    """Train (or reuse) the SCST expert for one objective and seed; return its summary."""
    seed = training_seeds(cfg)[0] if seed is None else seed
    out = RunDir(run_dir).seed(seed).expert(objective_name(objective)).root
    return _train_scst_unit(scst_config(cfg, [objective], "expert", seed, out))


def train_experts(cfg: StudyConfig, run_dir: Path) -> None:
    def run() -> dict[str, Any]:
        jobs = [{"cfg": cfg, "objective": o, "run_dir": run_dir, "seed": s}
                for s in training_seeds(cfg) for o in cfg.objectives]
        names = [f"expert {objective_name(j['objective'])} seed {j['seed']}" for j in jobs]
        out = fan_out(train_expert_stage, jobs, cfg.workers, names, cfg.ray_address,
                      cfg.gpus_per_job)
        return {n: {k: r[k] for k in ("steps", "data_consumed", "seconds", "converged")}
                for n, r in zip(names, out, strict=True)}

    stage(run_dir, "experts", run)


def build_ensembles(cfg: StudyConfig, run_dir: Path) -> None:
    def run() -> list[str]:
        for s in training_seeds(cfg):
            sd = RunDir(run_dir).seed(s)
            experts = {n: sd.expert_entry(n) for n in cfg.objective_names}
            EnsembleManifest(base=cfg.policy.name, experts=experts,
                             system=cfg.policy.system).save(sd.root)
        return cfg.objective_names

    stage(run_dir, "ensembles", run)


def search_config(cfg: StudyConfig, seed: int, run_dir: Path) -> SearchConfig:
    """The weight search of one seed: `search` with the fields in SEARCH_SET_BY filled in."""
    return fill(cfg.search, SEARCH_SET_BY, ensemble=str(RunDir(run_dir).seed(seed).root),
                out_dir=None, objectives=list(cfg.objectives), data=cfg.data.val,
                column=cfg.data.column, seed=seed, device=cfg.policy.device)


def search_weights(cfg: StudyConfig, run_dir: Path) -> None:
    """Hierarchical grid search per seed; the first seed's ensemble is published at the top."""

    def run() -> dict[str, Any]:
        best = {}
        for s in training_seeds(cfg):
            def progress(entry: IterationRecord, s: int = s) -> None:
                say(f"search seed {s} {describe_iteration(entry)}")

            result = run_search(search_config(cfg, s, run_dir), on_iteration=progress)
            best[str(s)] = {"weights": list(result.best_point), "score": result.best_score}
        first_seed = training_seeds(cfg)[0]
        first = EnsembleManifest.load(RunDir(run_dir).seed(first_seed).root)
        first.experts = {k: RunDir(run_dir).published_entry(first_seed, v)
                         for k, v in first.experts.items()}
        first.save(run_dir)  # `moalign generate --ensemble RUN_DIR` works on the study folder
        return best

    stage(run_dir, "search", run)


def train_baselines(cfg: StudyConfig, run_dir: Path) -> None:
    methods = [m for m in cfg.baselines if m in TRAINED_BASELINES]

    def run() -> dict[str, Any]:
        jobs = [{"scst_cfg": scst_config(cfg, cfg.objectives, m, s,
                                         RunDir(run_dir).seed(s).baseline(m).root)}
                for s in training_seeds(cfg) for m in methods]
        names = [f"{j['scst_cfg'].method} seed {j['scst_cfg'].seed}" for j in jobs]
        out = fan_out(_train_scst_unit, jobs, cfg.workers, names, cfg.ray_address,
                      cfg.gpus_per_job)
        return {n: {k: r[k] for k in ("steps", "data_consumed", "seconds", "converged")}
                for n, r in zip(names, out, strict=True)}

    if methods:
        stage(run_dir, "baselines", run)


# ----------------------------------------------------------------------------- evaluation


def emorl_systems(cfg: StudyConfig) -> list[System]:
    sampling, system = evaluation_sampling(cfg.evaluation), cfg.policy.system

    def plain(adapter: str | None) -> Callable[[LoadedModels], GenerateFn]:
        return lambda m: policy_generate_fn(m["policy"], sampling, system, adapter)

    def aggregated(level: Level, how: Sampling = sampling
                   ) -> Callable[[LoadedModels], GenerateFn]:
        return lambda m: ensemble_generate_fn(m["ensemble"], m["weights"], level, how,
                                              system, logits_space=cfg.logits_space)

    systems = [System("base", base_label(cfg.policy.name), "ensemble", plain(None))]
    systems += [System(f"expert_{n}", f"Expert: {n}", "ensemble", plain(n))
                for n in cfg.objective_names]
    labels = {"uniform": "Uniform Weighted", "dynaopt": "DynaOpt", "soup": "Model Soup",
              "logits": "Logits aggregation" + ("" if cfg.logits_space == "raw" else
                                                f" ({cfg.logits_space})")}
    for b in cfg.baselines:
        group = "adapters" if b in TRAINED_BASELINES else "ensemble"
        make = plain(b) if b in TRAINED_BASELINES else aggregated(LEVEL_OF[b])
        systems.append(System(b, labels[b], group, make))
    if cfg.emorl_decoding == "argmax":
        argmax = Sampling.greedy(cfg.evaluation.max_new_tokens)
        systems.append(System("emorl", "EMORL (states, argmax)", "ensemble",
                              aggregated("states", argmax)))
    else:
        systems.append(System("emorl", "EMORL (states)", "ensemble", aggregated("states")))
    return systems


def _load_group(cfg: StudyConfig, run_dir: Path, seed: int, group: str) -> LoadedModels:
    sd = RunDir(run_dir).seed(seed)
    if group == "ensemble":
        ensemble, manifest = load_ensemble(sd.root, device=cfg.policy.device)
        if manifest.best_weights is None:
            raise ConfigError(f"{sd.ensemble_json} has no best_weights; delete "
                              f"{RunDir(run_dir).stage_marker('search')} to search again")
        return {"ensemble": ensemble, "policy": ensemble.policy, "weights": manifest.best_weights}
    policy = load_policy(cfg.policy.name, device=cfg.policy.device)
    for m in (b for b in cfg.baselines if b in TRAINED_BASELINES):
        load_adapter(policy, sd.baseline(m).adapter, m)
    return {"policy": policy}


def evaluation_prompts(cfg: StudyConfig) -> list[str]:
    """The test split's prompts the systems answer (`evaluation.test_prompts` of them; 0: all)."""
    spec = cfg.data.test
    prompts = load_prompts({"column": cfg.data.column, **spec} if isinstance(spec, dict) else
                           {"path": str(spec), "column": cfg.data.column})
    n = cfg.evaluation.test_prompts
    return prompts[:n] if n else prompts


def evaluate_systems(cfg: StudyConfig, run_dir: Path) -> None:
    def run() -> dict[str, Any]:
        systems = emorl_systems(cfg)
        n = run_units(cfg, run_dir, systems, evaluation_prompts(cfg),
                      lambda seed, group: _load_group(cfg, run_dir, model_seed(cfg, seed), group),
                      cfg.objectives)
        return {"systems": [s.key for s in systems], "units_evaluated": n}

    stage(run_dir, "evaluate", run)


# ----------------------------------------------------------------------------- evidence


def add_objective_plan(cfg: StudyConfig, ev: EvidenceSection, added: str, run_dir: Path,
                       seed: int) -> AddObjective:
    """C6 of one seed: the study's search, scorer specs and (unless reused) the added expert."""
    specs = dict(zip(cfg.objective_names, cfg.objectives, strict=True))
    sd = RunDir(run_dir).seed(seed)
    expert = (added_expert_config(scst_config(cfg, [specs[added]], "expert", seed,
                                              sd.expert(added).root), sd)
              if ev.retrain_added else None)
    return AddObjective(search_config(cfg, seed, run_dir), specs, added, expert, ev.margin)


def gather_evidence(cfg: StudyConfig, run_dir: Path) -> None:
    """The `evidence` section's stages for every training seed (after the search)."""
    ev = cfg.evidence
    if ev is None or not (ev.full_grid or ev.add_objective):
        return

    def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in training_seeds(cfg):
            if ev.full_grid:
                grid = full_grid_evidence(search_config(cfg, s, run_dir), ev.margin)
                out[f"full_grid seed {s}"] = {k: grid[k]["best_value"]
                                              for k in ("full", "hierarchical")}
            if ev.add_objective:
                added = add_objective_evidence(add_objective_plan(cfg, ev, ev.add_objective,
                                                                  run_dir, s))
                out[f"add_objective seed {s}"] = {k: added[k]["best_value"]
                                                  for k in ("after", "from_start")}
        return out

    stage(run_dir, "evidence", run)


# ----------------------------------------------------------------------------- summary


def training_costs(cfg: StudyConfig, run_dir: Path) -> dict[str, dict[str, list[float]]]:
    """Data (prompts) and seconds per seed for each system (EMORL §6: max expert + search).

    `data` counts the search in moalign's convention (distinct weight points decoded ×
    prompts), `data_paper` in the EMORL paper's (3^K·I grid points × prompts, no cache); the
    two differ only for the aggregated systems (`weight_search.COST_CONVENTIONS`)."""
    costs: dict[str, dict[str, list[float]]] = {}

    def add(key: str, data: float, seconds: float, data_paper: float | None = None) -> None:
        c = costs.setdefault(key, {"data": [], "seconds": [], "data_paper": []})
        c["data"].append(float(data))
        c["seconds"].append(float(seconds))
        c["data_paper"].append(float(data if data_paper is None else data_paper))

    for s in training_seeds(cfg):
        sd = RunDir(run_dir).seed(s)
        experts = [read_json(sd.expert(n).summary) for n in cfg.objective_names]
        for n, e in zip(cfg.objective_names, experts, strict=True):
            add(f"expert_{n}", e["data_consumed"], e["seconds"])
        search = read_json(sd.search.summary)
        if "data_paper" not in search:  # a search summary written before both conventions
            n_prompts = read_json(sd.search.fingerprint)["n_prompts"]
            search = {**search, **search_cost(search.get("n_evaluated_total", 0),
                                              search.get("n_points_visited", 0), n_prompts)}
        expert_data = max(e["data_consumed"] for e in experts)
        for key in ("emorl", "soup", "logits"):
            add(key, expert_data + search["data_moalign"],
                max(e["seconds"] for e in experts) + search.get("seconds", 0.0),
                expert_data + search["data_paper"])
        for m in (b for b in cfg.baselines if b in TRAINED_BASELINES):
            b = read_json(sd.baseline(m).summary)
            add(m, b["data_consumed"], b["seconds"])
    return costs


def summarise_emorl(cfg: StudyConfig, run_dir: Path) -> None:
    stage(run_dir, "summary", lambda: summarise(cfg, run_dir, emorl_systems(cfg),
                                                training_costs(cfg, run_dir),
                                                len(evaluation_prompts(cfg))))


def run_emorl_study(cfg: StudyConfig) -> Path:
    """Run (or resume) the whole EMORL study; return the run directory."""
    t0 = time.perf_counter()
    run_dir = start_run(cfg, "emorl")
    train_experts(cfg, run_dir)
    build_ensembles(cfg, run_dir)
    search_weights(cfg, run_dir)
    train_baselines(cfg, run_dir)
    evaluate_systems(cfg, run_dir)
    gather_evidence(cfg, run_dir)
    summarise_emorl(cfg, run_dir)
    finish_study(run_dir, time.perf_counter() - t0)
    write_report(run_dir)
    return run_dir


# ----------------------------------------------------------------------------- dispatch


def load_study(path: str | Path, overrides: list[str] | None = None
               ) -> StudyConfig | MolmaStudyConfig:
    """Load a study config, choosing the dataclass from its `kind` (emorl | molma).

    `path` is a YAML file, or the bare name of a shipped config (`counsel-demo`) when no such
    file exists here.
    """
    p = Path(path)
    if not p.is_file():
        if len(p.parts) != 1:
            raise ConfigError(f"config file {p} does not exist; shipped configs: "
                              f"{', '.join(shipped_config_names())}")
        p = shipped_config(p.name)
    data = load_yaml(p)
    kind = str(data.get("kind", "emorl")) if isinstance(data, dict) else "emorl"
    kind = str(parse_overrides(overrides).get("kind", kind))
    if kind == "emorl":
        return load_config(StudyConfig, p, overrides)
    if kind == "molma":
        return load_config(MolmaStudyConfig, p, overrides)
    raise ConfigError(f"{p}: unknown kind {kind!r}; use kind: emorl or kind: molma")


def run_study(cfg: StudyConfig | MolmaStudyConfig) -> Path:
    """Run the study a config describes (`moalign run`)."""
    if isinstance(cfg, StudyConfig):
        return run_emorl_study(cfg)
    return run_molma_study(cfg)
