"""`moalign run CONFIG.yaml`: one config runs a whole study and writes a report (SPEC B4).

EMORL study (`kind: emorl`), stages top to bottom, for every seed of `evaluation.seeds`:

    train_experts      one SCST expert per objective          seed_<s>/experts/<objective>/
    build_ensembles    the ensemble manifest                  seed_<s>/ensemble.json
    search_weights     hierarchical grid search               seed_<s>/search/
    train_baselines    uniform weighted and DynaOpt SCST      seed_<s>/baselines/<method>/
    evaluate_systems   test split: untrained policy, experts, baselines, soup, logits, EMORL
                       × `runs` generation runs               eval/units/<system>/*.json
    summarise          EMORL Table 1/2-shaped numbers         eval/table.json, eval/generations/
    write_report       HTML + Markdown                        report/

MOLMA study (`kind: molma`): reward models -> MOLMA and SO baselines -> evaluation -> win rates
-> report, in `moalign.pipeline_molma` on the same stage machinery. `load_study` / `run_study`
dispatch on the config's `kind`.

Every stage writes its artifacts atomically into the run directory and leaves a completion marker
`stages/<stage>.json`; a marked stage is skipped, so an interrupted run resumes where it stopped
(inside a stage, finished units are skipped too: an expert with summary.json, a search with its
results.jsonl, an evaluated (system, seed, run)).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from moalign.config import require
from moalign.io import atomic_write_json

BASELINES = ("uniform", "dynaopt", "soup", "logits")
TRAINED_BASELINES = ("uniform", "dynaopt")
LEVEL_OF = {"soup": "params", "logits": "logits", "emorl": "states"}
_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


# ----------------------------------------------------------------------------- config


@dataclass
class PolicySection:
    name: str = "smollm2-135m-instruct"  # bundled id, local model folder, or HF id (causal/T5)
    system: str | None = None  # system prompt (chat models) or prefix (others)
    device: str = "auto"


@dataclass
class DataSection:
    train: Any = "counsel_train"  # embedded name, file path, or a moalign.data.load_prompts dict
    val: Any = "counsel_val"
    test: Any = "counsel_test"
    column: str = "prompt"


@dataclass
class TrainingSection:
    """SCST settings shared by the experts and the uniform / DynaOpt baselines (SPEC §2)."""

    n_samples: int = 3
    temperature: float = 1.0
    max_new_tokens: int = 64
    batch_size: int = 16
    micro_batch: int = 0
    lr: float = 1e-4
    kl_coef: float = 0.0
    reward_transform: Literal["identity", "log"] = "identity"
    val_every: int = 8
    val_batch: int = 8
    window: int = 20
    tol: float = 0.015
    max_steps: int = 500
    save_every: int = 50
    extra: dict[str, Any] = field(default_factory=dict)  # any other SCSTConfig field

    def validate(self) -> None:
        from moalign.trainers.scst import SCSTConfig

        valid = {f.name for f in dataclasses.fields(SCSTConfig)}
        owned = {"policy", "objectives", "method", "data", "val_data", "column", "system",
                 "seed", "out_dir", "device"}
        bad = sorted(set(self.extra) - (valid - owned))
        require(not bad, f"training.extra has unknown or study-owned key(s) {bad}; valid: "
                f"{sorted(valid - owned - {f.name for f in dataclasses.fields(self)})}")


@dataclass
class SearchSection:
    """Weight search over the experts (SPEC §4), see `moalign.search_run.SearchConfig`."""

    method: Literal["hierarchical", "grid", "random"] = "hierarchical"
    iterations: int = 5
    level: Literal["states", "logits", "params"] = "states"
    n_prompts: int = 16  # validation prompts per weight point
    max_new_tokens: int = 64
    chunk_size: int = 256
    extra: dict[str, Any] = field(default_factory=dict)  # any other SearchConfig field


@dataclass
class EvaluationSection:
    seeds: list[int] = field(default_factory=lambda: [0])  # each trains its own models
    runs: int = 1  # generation runs per seed
    test_prompts: int = 0  # 0: the whole test split
    max_new_tokens: int = 64
    do_sample: bool = True
    temperature: float = 1.0
    top_p: float = 1.0

    def validate(self) -> None:
        require(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds),
                f"evaluation.seeds must be distinct seeds, e.g. [0, 1], got {self.seeds}")
        require(self.runs >= 1, f"evaluation.runs must be >= 1, got {self.runs}")
        require(self.test_prompts >= 0, "evaluation.test_prompts must be >= 0 (0: all)")
        require(self.max_new_tokens >= 1, "evaluation.max_new_tokens must be >= 1")
        require(self.do_sample or self.runs == 1, "greedy decoding (do_sample: false) gives the "
                "same output every run; set runs: 1 or do_sample: true")


def objective_name(spec: Any) -> str:
    """Directory / adapter name of an objective spec (embedded name, folder, or dict `name`)."""
    if isinstance(spec, dict):
        require("name" in spec, f"objective {spec} needs a `name` (used for its expert)")
        return str(spec["name"])
    require(isinstance(spec, str) and ":" not in spec, f"objective {spec!r}: write it as a "
            "mapping with a name, e.g. {name: you, kind: python, function: pkg.mod:func}")
    return Path(spec).name


@dataclass
class StudyConfig:
    """`moalign run` for an EMORL study: experts, search, baselines, evaluation, report."""

    kind: Literal["emorl"] = "emorl"
    name: str | None = None
    policy: PolicySection = field(default_factory=PolicySection)
    objectives: list[Any] = field(default_factory=lambda: ["reflection", "empathy", "fluency"])
    data: DataSection = field(default_factory=DataSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    search: SearchSection = field(default_factory=SearchSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    out_dir: str = "runs/emorl"
    workers: int = 1  # > 1: train experts / baselines as parallel Ray jobs

    def validate(self) -> None:
        names = [objective_name(o) for o in self.objectives]
        require(len(names) >= 2, f"an EMORL study needs >= 2 objectives, got {names}")
        require(len(set(names)) == len(names), f"objective names repeat: {names}")
        for n in names:
            require(bool(_NAME.match(n)), f"objective name {n!r} must match {_NAME.pattern}")
        bad = sorted(set(self.baselines) - set(BASELINES))
        require(not bad, f"unknown baseline(s) {bad}; choose from {list(BASELINES)}")
        require(self.workers >= 1, f"workers must be >= 1, got {self.workers}")
        for key in self.search.extra:
            require(key not in ("ensemble", "out_dir", "objectives", "data"),
                    f"search.extra.{key} is set by the study")

    @property
    def objective_names(self) -> list[str]:
        return [objective_name(o) for o in self.objectives]


# ----------------------------------------------------------------------------- stage machinery


def say(message: str) -> None:
    print(f"[moalign {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stage(run_dir: Path, name: str, fn: Callable[[], Any]) -> Any:
    """Run `fn` unless `stages/<name>.json` exists; then write that marker with its result."""
    marker = run_dir / "stages" / f"{name}.json"
    if marker.is_file():
        say(f"skip {name} (done)")
        return json.loads(marker.read_text(encoding="utf-8")).get("result")
    say(f"start {name}")
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    atomic_write_json(marker, {"stage": name, "seconds": round(seconds, 3),
                               "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "result": result})
    say(f"done  {name} in {seconds:.1f} s")
    return result


def start_run(cfg: Any, kind: str) -> Path:
    """Create the run directory and save the resolved config (warn when it changed)."""
    from moalign.config import save_config, to_dict

    cfg.validate()
    run_dir = Path(cfg.out_dir)
    old = run_dir / "config.yaml"
    if old.is_file():
        import yaml

        before = yaml.safe_load(old.read_text(encoding="utf-8"))
        if before != json.loads(json.dumps(to_dict(cfg), default=str)):
            say(f"{old} differs from this config; completed stages are kept (delete "
                f"{run_dir}/stages/<stage>.json to redo one)")
    save_config(cfg, run_dir)
    study = {"kind": kind, "name": cfg.name or run_dir.name, "policy": cfg.policy.name,
             "objectives": _study_objectives(cfg), "seeds": cfg.evaluation.seeds,
             "runs": cfg.evaluation.runs, "test_prompts": cfg.evaluation.test_prompts}
    atomic_write_json(run_dir / "study.json", study)
    return run_dir


def _study_objectives(cfg: Any) -> list[str]:
    return [objective_name(o) for o in cfg.objectives]


def seed_dir(run_dir: Path, seed: int) -> Path:
    return run_dir / f"seed_{seed}"


def fan_out(fn: Callable[..., Any], jobs: list[dict[str, Any]], workers: int,
            names: list[str]) -> list[Any]:
    """The `workers` hook: jobs run here one by one (all threads) for 1 worker, else as Ray jobs
    (`moalign.distributed.fan_out`) sharing the machine's cores."""
    import os

    from moalign.distributed import fan_out as distributed_fan_out

    if workers <= 1:
        return [fn(**job) for job in jobs]
    cpus = max(1, (os.cpu_count() or 1) // workers)
    return distributed_fan_out(fn, jobs, workers=workers, names=names, num_cpus=cpus)


# ----------------------------------------------------------------------------- EMORL stages


def scst_config(cfg: StudyConfig, objectives: list[Any], method: str, seed: int,
                out_dir: Path) -> Any:
    from moalign.trainers.scst import SCSTConfig

    t = cfg.training
    common = {f.name: getattr(t, f.name) for f in dataclasses.fields(t) if f.name != "extra"}
    return SCSTConfig(policy=cfg.policy.name, objectives=list(objectives), method=method,
                      data=cfg.data.train, val_data=cfg.data.val, column=cfg.data.column,
                      system=cfg.policy.system, seed=seed, out_dir=str(out_dir),
                      device=cfg.policy.device, **common, **t.extra)


def _train_scst_unit(scst_cfg: Any) -> dict[str, Any]:
    """Train one SCST run unless its summary.json exists; resume from a checkpoint if any."""
    from moalign.checkpoint import has_checkpoint
    from moalign.trainers.scst import train_scst

    done = Path(scst_cfg.out_dir) / "summary.json"
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    return train_scst(scst_cfg, resume=has_checkpoint(scst_cfg.out_dir))


def train_expert_stage(cfg: StudyConfig, objective: Any, run_dir: Path,
                       seed: int | None = None) -> dict[str, Any]:
    """Train (or reuse) the SCST expert for one objective and seed; return its summary."""
    seed = cfg.evaluation.seeds[0] if seed is None else seed
    out = seed_dir(Path(run_dir), seed) / "experts" / objective_name(objective)
    return _train_scst_unit(scst_config(cfg, [objective], "expert", seed, out))


def train_experts(cfg: StudyConfig, run_dir: Path) -> None:
    def run() -> dict[str, Any]:
        jobs = [{"cfg": cfg, "objective": o, "run_dir": run_dir, "seed": s}
                for s in cfg.evaluation.seeds for o in cfg.objectives]
        names = [f"expert {objective_name(j['objective'])} seed {j['seed']}" for j in jobs]
        out = fan_out(train_expert_stage, jobs, cfg.workers, names)
        return {n: {k: r[k] for k in ("steps", "data_consumed", "seconds", "converged")}
                for n, r in zip(names, out, strict=True)}

    stage(run_dir, "experts", run)


def build_ensembles(cfg: StudyConfig, run_dir: Path) -> None:
    from moalign.experts import EnsembleManifest

    def run() -> list[str]:
        for s in cfg.evaluation.seeds:
            experts = {n: f"experts/{n}/adapter" for n in cfg.objective_names}
            EnsembleManifest(base=cfg.policy.name, experts=experts,
                             system=cfg.policy.system).save(seed_dir(run_dir, s))
        return cfg.objective_names

    stage(run_dir, "ensembles", run)


def search_config(cfg: StudyConfig, seed: int, run_dir: Path) -> Any:
    from moalign.search_run import SearchConfig

    s = cfg.search
    return SearchConfig(ensemble=str(seed_dir(run_dir, seed)), objectives=list(cfg.objectives),
                        data=cfg.data.val, column=cfg.data.column, n_prompts=s.n_prompts,
                        method=s.method, iterations=s.iterations, level=s.level,
                        max_new_tokens=s.max_new_tokens, chunk_size=s.chunk_size, seed=seed,
                        device=cfg.policy.device, **s.extra)


def search_weights(cfg: StudyConfig, run_dir: Path) -> None:
    """Hierarchical grid search per seed; the first seed's ensemble is published at the top."""
    from moalign.experts import EnsembleManifest
    from moalign.search_run import run_search

    def run() -> dict[str, Any]:
        best = {}
        for s in cfg.evaluation.seeds:
            result = run_search(search_config(cfg, s, run_dir))
            best[str(s)] = {"weights": list(result.best_point), "score": result.best_score}
        first = EnsembleManifest.load(seed_dir(run_dir, cfg.evaluation.seeds[0]))
        prefix = f"seed_{cfg.evaluation.seeds[0]}/"
        first.experts = {k: prefix + v for k, v in first.experts.items()}
        first.save(run_dir)  # `moalign generate --ensemble RUN_DIR` works on the study folder
        return best

    stage(run_dir, "search", run)


def train_baselines(cfg: StudyConfig, run_dir: Path) -> None:
    methods = [m for m in cfg.baselines if m in TRAINED_BASELINES]

    def run() -> dict[str, Any]:
        jobs = [{"scst_cfg": scst_config(cfg, cfg.objectives, m, s,
                                         seed_dir(run_dir, s) / "baselines" / m)}
                for s in cfg.evaluation.seeds for m in methods]
        names = [f"{j['scst_cfg'].method} seed {j['scst_cfg'].seed}" for j in jobs]
        out = fan_out(_train_scst_unit, jobs, cfg.workers, names)
        return {n: {k: r[k] for k in ("steps", "data_consumed", "seconds", "converged")}
                for n, r in zip(names, out, strict=True)}

    if methods:
        stage(run_dir, "baselines", run)


# ----------------------------------------------------------------------------- evaluation


@dataclass
class System:
    key: str
    label: str
    group: str  # "ensemble": the seed's experts; "adapters": extra adapters on a fresh policy
    make: Callable[[Any], Any]  # loaded models -> GenerateFn


def base_label(name: str) -> str:
    return f"{Path(name).name} (untrained)"


def emorl_systems(cfg: StudyConfig) -> list[System]:
    from moalign.evaluate import ensemble_generate_fn, policy_generate_fn

    e = cfg.evaluation
    gen = {"max_new_tokens": e.max_new_tokens, "do_sample": e.do_sample,
           "temperature": e.temperature, "top_p": e.top_p, "system": cfg.policy.system}

    def plain(adapter: str | None) -> Callable[[Any], Any]:
        return lambda m: policy_generate_fn(m["policy"], adapter=adapter, **gen)

    def aggregated(level: str) -> Callable[[Any], Any]:
        return lambda m: ensemble_generate_fn(m["ensemble"], m["weights"], level=level, **gen)

    systems = [System("base", base_label(cfg.policy.name), "ensemble", plain(None))]
    systems += [System(f"expert_{n}", f"Expert: {n}", "ensemble", plain(n))
                for n in cfg.objective_names]
    labels = {"uniform": "Uniform Weighted", "dynaopt": "DynaOpt", "soup": "Model Soup",
              "logits": "Logits aggregation"}
    for b in cfg.baselines:
        group = "adapters" if b in TRAINED_BASELINES else "ensemble"
        make = plain(b) if b in TRAINED_BASELINES else aggregated(LEVEL_OF[b])
        systems.append(System(b, labels[b], group, make))
    systems.append(System("emorl", "EMORL (states)", "ensemble", aggregated("states")))
    return systems


def _load_group(cfg: StudyConfig, run_dir: Path, seed: int, group: str) -> dict[str, Any]:
    from moalign.experts import EnsembleManifest, load_ensemble
    from moalign.models import load_adapter, load_policy

    sd = seed_dir(run_dir, seed)
    if group == "ensemble":
        ensemble, manifest = load_ensemble(sd, device=cfg.policy.device)
        weights = manifest.best_weights or EnsembleManifest.load(sd).best_weights
        return {"ensemble": ensemble, "policy": ensemble.policy, "weights": weights}
    policy = load_policy(cfg.policy.name, device=cfg.policy.device)
    for m in (b for b in cfg.baselines if b in TRAINED_BASELINES):
        load_adapter(policy, sd / "baselines" / m / "adapter", m)
    return {"policy": policy}


def unit_path(run_dir: Path, system: str, seed: int, run: int) -> Path:
    return run_dir / "eval" / "units" / system / f"seed_{seed}_run_{run}.json"


def evaluate_unit(fn: Any, prompts: list[str], scorers: list[Any], gen_seed: int
                  ) -> dict[str, Any]:
    """Generate once for every test prompt and score it (rewards, diversity-2, edit rate)."""
    from moalign.evaluate import score_responses

    t0 = time.perf_counter()
    responses = [r.strip() for r in fn(prompts, gen_seed)]
    s = score_responses(prompts, responses, scorers)
    return {"objectives": s["objectives"], "score": s["score"], "diversity2": s["diversity2"],
            "edit_rate": s["edit_rate"], "n": s["n"], "gen_seed": gen_seed,
            "seconds": round(time.perf_counter() - t0, 3), "prompts": prompts,
            "responses": responses, "per_example": s["per_example"]}


def test_prompts(cfg: Any) -> list[str]:
    from moalign.data import load_prompts

    spec = cfg.data.test
    prompts = load_prompts({"column": cfg.data.column, **spec} if isinstance(spec, dict) else
                           {"path": str(spec), "column": cfg.data.column})
    n = cfg.evaluation.test_prompts
    return prompts[:n] if n else prompts


def run_units(cfg: Any, run_dir: Path, systems: list[System], prompts: list[str],
              load: Callable[[int, str], dict[str, Any]], objectives: list[Any]) -> int:
    """Evaluate every (system, seed, run) that has no unit file yet; load models lazily."""
    from moalign.scorers import build_scorers

    scorers, done = build_scorers(list(objectives)), 0
    for seed in cfg.evaluation.seeds:
        loaded: dict[str, dict[str, Any]] = {}
        for system in systems:
            for run in range(cfg.evaluation.runs):
                path = unit_path(run_dir, system.key, seed, run)
                if path.is_file():
                    continue
                if system.group not in loaded:
                    loaded[system.group] = load(seed, system.group)
                say(f"evaluate {system.key} seed {seed} run {run}")
                unit = evaluate_unit(system.make(loaded[system.group]), prompts, scorers,
                                     1000 * seed + run)
                atomic_write_json(path, {"system": system.key, "seed": seed, "run": run, **unit})
                done += 1
        loaded.clear()
    return done


def evaluate_systems(cfg: StudyConfig, run_dir: Path) -> None:
    def run() -> dict[str, Any]:
        systems = emorl_systems(cfg)
        n = run_units(cfg, run_dir, systems, test_prompts(cfg),
                      lambda seed, group: _load_group(cfg, run_dir, seed, group), cfg.objectives)
        return {"systems": [s.key for s in systems], "units_evaluated": n}

    stage(run_dir, "evaluate", run)


# ----------------------------------------------------------------------------- summary


def _ms(values: list[float]) -> list[float] | None:
    from moalign.metrics import mean_std

    return list(mean_std(values)) if values else None


def _summary(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def training_costs(cfg: StudyConfig, run_dir: Path) -> dict[str, dict[str, list[float]]]:
    """Data (prompts) and seconds per seed for each system (EMORL: max expert + search)."""
    costs: dict[str, dict[str, list[float]]] = {}

    def add(key: str, data: float, seconds: float) -> None:
        c = costs.setdefault(key, {"data": [], "seconds": []})
        c["data"].append(float(data))
        c["seconds"].append(float(seconds))

    for s in cfg.evaluation.seeds:
        sd = seed_dir(run_dir, s)
        experts = [_summary(sd / "experts" / n / "summary.json") for n in cfg.objective_names]
        for n, e in zip(cfg.objective_names, experts, strict=True):
            add(f"expert_{n}", e["data_consumed"], e["seconds"])
        search = _summary(sd / "search" / "summary.json")
        n_prompts = _summary(sd / "search" / "fingerprint.json")["n_prompts"]
        agg_data = search.get("n_evaluated_total", 0) * n_prompts  # prompts decoded by search
        for key in ("emorl", "soup", "logits"):
            add(key, max(e["data_consumed"] for e in experts) + agg_data,
                max(e["seconds"] for e in experts) + search.get("seconds", 0.0))
        for m in (b for b in cfg.baselines if b in TRAINED_BASELINES):
            b = _summary(sd / "baselines" / m / "summary.json")
            add(m, b["data_consumed"], b["seconds"])
    return costs


def method_row(key: str, label: str, units: list[dict[str, Any]], names: list[str],
               cost: dict[str, list[float]] | None) -> dict[str, Any]:
    return {"key": key, "label": label, "n": len(units),
            "rewards": {n: _ms([u["objectives"][n] for u in units]) for n in names},
            "mean_reward": _ms([u["score"] for u in units]),
            "diversity2": _ms([u["diversity2"] for u in units]),
            "edit_rate": _ms([u["edit_rate"] for u in units]),
            "data": _ms(cost["data"]) if cost else None,
            "seconds": _ms(cost["seconds"]) if cost else None}


def write_generations(run_dir: Path, key: str, units: list[dict[str, Any]],
                      names: list[str]) -> None:
    """eval/generations/<system>.jsonl: every response with its rewards (report, human eval)."""
    from moalign.io import write_jsonl

    rows = []
    for u in units:
        for i, (p, r) in enumerate(zip(u["prompts"], u["responses"], strict=True)):
            rows.append({"seed": u["seed"], "run": u["run"], "index": i, "prompt": p,
                         "response": r, "rewards": {n: u["per_example"][n][i] for n in names}})
    write_jsonl(run_dir / "eval" / "generations" / f"{key}.jsonl", rows)


def summarise(cfg: Any, run_dir: Path, systems: list[System],
              costs: dict[str, dict[str, list[float]]], n_prompts: int) -> dict[str, Any]:
    """eval/table.json (EMORL Table 1/2 numbers, mean ± std over seeds × runs)."""
    names = _study_objectives(cfg)
    methods = []
    for system in systems:
        units = [_summary(p) for p in sorted((run_dir / "eval" / "units" / system.key)
                                             .glob("*.json"))]
        if not units:
            continue
        methods.append(method_row(system.key, system.label, units, names, costs.get(system.key)))
        write_generations(run_dir, system.key, units, names)
    table = {"objectives": names, "seeds": cfg.evaluation.seeds, "runs": cfg.evaluation.runs,
             "n_prompts": n_prompts, "methods": methods}
    atomic_write_json(run_dir / "eval" / "table.json", table)
    return {"methods": [m["key"] for m in methods]}


def summarise_emorl(cfg: StudyConfig, run_dir: Path) -> None:
    stage(run_dir, "summary", lambda: summarise(cfg, run_dir, emorl_systems(cfg),
                                                training_costs(cfg, run_dir),
                                                len(test_prompts(cfg))))


def write_report(run_dir: Path) -> tuple[Path, Path]:
    """Always rebuilt (cheap): the report reflects every artifact present now."""
    from moalign.report import build_report

    html_path, md_path = build_report(run_dir)
    say(f"report: {html_path}")
    return html_path, md_path


def run_emorl_study(cfg: StudyConfig) -> Path:
    """Run (or resume) the whole EMORL study; return the run directory."""
    t0 = time.perf_counter()
    run_dir = start_run(cfg, "emorl")
    train_experts(cfg, run_dir)
    build_ensembles(cfg, run_dir)
    search_weights(cfg, run_dir)
    train_baselines(cfg, run_dir)
    evaluate_systems(cfg, run_dir)
    summarise_emorl(cfg, run_dir)
    finish_study(run_dir, time.perf_counter() - t0)
    write_report(run_dir)
    return run_dir


def finish_study(run_dir: Path, seconds: float) -> None:
    study = json.loads((run_dir / "study.json").read_text(encoding="utf-8"))
    study["last_invocation_seconds"] = round(seconds, 1)
    study["systems"] = [m["key"] for m in json.loads(
        (run_dir / "eval" / "table.json").read_text(encoding="utf-8"))["methods"]]
    atomic_write_json(run_dir / "study.json", study)


# ----------------------------------------------------------------------------- dispatch


def load_study(path: str | Path, overrides: list[str] | None = None) -> Any:
    """Load a study config, choosing the dataclass from its `kind` (emorl | molma)."""
    import yaml

    from moalign.config import ConfigError, load_config

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist; try configs/counsel-demo.yaml")
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    kind = str(data.get("kind", "emorl")) if isinstance(data, dict) else "emorl"
    for item in overrides or []:
        if item.split("=", 1)[0].strip() == "kind":
            kind = item.split("=", 1)[1].strip()
    if kind == "emorl":
        return load_config(StudyConfig, p, overrides)
    if kind == "molma":
        from moalign.pipeline_molma import MolmaStudyConfig

        return load_config(MolmaStudyConfig, p, overrides)
    raise ConfigError(f"{p}: unknown kind {kind!r}; use kind: emorl or kind: molma")


def run_study(cfg: Any) -> Path:
    """Run the study a config describes (`moalign run`)."""
    if isinstance(cfg, StudyConfig):
        return run_emorl_study(cfg)
    from moalign.pipeline_molma import run_molma_study

    return run_molma_study(cfg)
