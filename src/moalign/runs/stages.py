"""The machinery every `moalign run` study shares (EMORL in `moalign.emorl.study`, MOLMA in
`moalign.molma.study`).

* Stages: `stage(run_dir, name, fn)` runs `fn` once and leaves the completion marker
  `stages/<name>.json` (seconds, finish time, a small result); a marked stage is skipped, so an
  interrupted study resumes where it stopped. Artifacts are written atomically.
* Seeds: every training seed writes its models under `seed_<s>/`; an evaluation seed decodes the
  models of the training seed `model_seed` maps it to (itself when it trains models).
* Evaluation units: one (system, seed, generation run) = one atomic file
  `eval/units/<system>/seed_<s>_run_<r>.json` with every response and its rewards, diversity-2
  and edit rate; a unit file that exists is never recomputed.
* Summary: `eval/table.json` (mean ± std over seeds × runs per system, training cost per system)
  and `eval/generations/<system>.jsonl`, the inputs of `moalign.runs.report`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypedDict, TypeVar

import torch

from moalign.core.checkpoint import has_checkpoint
from moalign.core.config import from_dict, load_yaml, require, save_config, to_dict
from moalign.core.io import atomic_write_json, write_jsonl
from moalign.core.naming import objective_name
from moalign.emorl.ensemble import Ensemble, WeightsSpec
from moalign.evaluation.evaluate import GenerateFn, score_responses
from moalign.evaluation.metrics import LEXICAL_DEFINITIONS, mean_std
from moalign.models import Policy
from moalign.rewards.scorers import Scorer, build_scorers
from moalign.runs.layout import RunDir, UnitDir
from moalign.runs.report import build_report
from moalign.sampling import Sampling
from moalign.scale.ray_jobs import fan_out as distributed_fan_out

T = TypeVar("T")

# ----------------------------------------------------------------------------- config sections


@dataclass
class PolicySection:
    """The policy to fine-tune (causal LM or encoder-decoder such as T5) and its prompt."""

    name: str = "smollm2-135m-instruct"  # bundled id, local model folder, or HF id (causal/T5)
    system: str | None = None  # system prompt (chat models) or prefix (others)
    device: str = "auto"
    threads: int = 0  # torch CPU threads of the whole study (0: torch's default, all cores)

    def validate(self) -> None:
        require(self.threads >= 0, f"policy.threads must be >= 0 (0: torch's default), got "
                f"{self.threads}")


@dataclass
class EvaluationSection:
    """Decoding of the test prompts: `seeds` × `runs` generation runs per system."""

    seeds: list[int] = field(default_factory=lambda: [0])  # train their own models by default
    runs: int = 1  # generation runs per seed
    test_prompts: int = 0  # 0: the whole test split
    max_new_tokens: int = 64
    do_sample: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # the other options of `moalign.sampling.Sampling` (transformers' meaning)
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    min_new_tokens: int = 0
    stop: list[str] = field(default_factory=list)
    # diversity-2 / edit rate definitions the report shows (both are always computed):
    # moalign's (distinct/total bigrams, lower-cased words) and/or the EMORL authors'
    # (distinct bigrams / words, nltk-style tokens with case), see evaluation.metrics
    lexical_metrics: list[str] = field(default_factory=lambda: ["moalign"])

    def validate(self) -> None:
        check_seeds(self.seeds, "evaluation.seeds")
        bad = sorted(set(self.lexical_metrics) - set(LEXICAL_DEFINITIONS))
        require(bool(self.lexical_metrics) and not bad, f"evaluation.lexical_metrics must name "
                f"one or both of {list(LEXICAL_DEFINITIONS)}, got {self.lexical_metrics}")
        require(self.runs >= 1, f"evaluation.runs must be >= 1, got {self.runs}")
        require(self.test_prompts >= 0, "evaluation.test_prompts must be >= 0 (0: all)")
        require(self.max_new_tokens >= 1, "evaluation.max_new_tokens must be >= 1")
        require(self.do_sample or self.runs == 1, "greedy decoding (do_sample: false) gives the "
                "same output every run; set runs: 1 or do_sample: true")
        evaluation_sampling(self)  # the decoding options check themselves (ConfigError)


class Study(Protocol):
    """What the shared machinery reads of a study config (`moalign.emorl.study.StudyConfig`,
    `moalign.molma.study.MolmaStudyConfig`)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # a dataclass (`core.config` reads it)
    name: str | None
    policy: PolicySection
    objectives: list[Any]
    training_seeds: list[int] | None
    evaluation: EvaluationSection
    out_dir: str
    workers: int
    ray_address: str | None
    gpus_per_job: float

    def validate(self) -> None: ...

    @classmethod
    def upgrade_saved(cls, data: dict[str, Any]) -> dict[str, Any]: ...


class UnitConfig(Protocol):
    """A trainer config (`SCSTConfig`, `MolmaConfig`): one trained unit in `out_dir`."""

    out_dir: str


def evaluation_sampling(e: EvaluationSection) -> Sampling:
    """How every system decodes the test prompts; each generation run brings its own seed."""
    return Sampling(e.max_new_tokens, e.do_sample, e.temperature, e.top_p, top_k=e.top_k,
                    repetition_penalty=e.repetition_penalty,
                    no_repeat_ngram_size=e.no_repeat_ngram_size,
                    min_new_tokens=e.min_new_tokens, stop=tuple(e.stop))


# ----------------------------------------------------------------------------- seeds and names


def check_seeds(seeds: list[int] | None, where: str) -> None:
    if seeds is not None:
        require(len(seeds) >= 1 and len(set(seeds)) == len(seeds),
                f"{where} must be distinct seeds, e.g. [0, 1], got {seeds}")


def training_seeds(cfg: Study) -> list[int]:
    """Seeds that train models: `training_seeds`, else every evaluation seed."""
    return list(cfg.training_seeds or cfg.evaluation.seeds)


def model_seed(cfg: Study, seed: int) -> int:
    """The training seed whose models evaluation seed `seed` decodes (round robin)."""
    ts = training_seeds(cfg)
    return seed if seed in ts else ts[cfg.evaluation.seeds.index(seed) % len(ts)]


# ----------------------------------------------------------------------------- stages


def say(message: str) -> None:
    print(f"[moalign {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stage(run_dir: Path, name: str, fn: Callable[[], Any]) -> Any:
    """Run `fn` unless `stages/<name>.json` exists; then write that marker with its result."""
    marker = RunDir(run_dir).stage_marker(name)
    if marker.is_file():
        say(f"skip {name} (done)")
        return read_json(marker).get("result")
    say(f"start {name}")
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    atomic_write_json(marker, {"stage": name, "seconds": round(seconds, 3),
                               "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "result": result})
    say(f"done  {name} in {seconds:.1f} s")
    return result


def start_run(cfg: Study, kind: str) -> Path:
    """Create the run directory and save the resolved config (warn when it changed)."""
    cfg.validate()
    if cfg.policy.threads:
        torch.set_num_threads(cfg.policy.threads)  # process-wide, for every stage
    run = RunDir(Path(cfg.out_dir))
    run_dir, old = run.root, run.config_yaml
    if old.is_file():
        before = load_yaml(old)
        if not same_config(cfg, before):
            say(f"{old} differs from this config; completed stages are kept (delete "
                f"{run.stage_marker('<stage>')} to redo one)")
    save_config(cfg, run_dir)
    study = {"kind": kind, "name": cfg.name or run_dir.name, "policy": cfg.policy.name,
             "objectives": _study_objectives(cfg), "seeds": cfg.evaluation.seeds,
             "training_seeds": training_seeds(cfg),
             "runs": cfg.evaluation.runs, "test_prompts": cfg.evaluation.test_prompts}
    atomic_write_json(run.study_json, study)
    return run_dir


def same_config(cfg: Study, saved: Any) -> bool:
    """Whether a run directory's saved config is `cfg`; one saved by an earlier version is read
    through `type(cfg).upgrade_saved` and today's loader first (defaults filled in)."""
    def plain(data: Any) -> Any:
        return json.loads(json.dumps(data, default=str))

    now = plain(to_dict(cfg))
    if saved == now:
        return True
    try:
        return plain(to_dict(from_dict(type(cfg), type(cfg).upgrade_saved(saved)))) == now
    except (TypeError, ValueError, AttributeError):  # not a config this version can read
        return False


def upgrade_sections(saved: dict[str, Any]) -> dict[str, Any]:
    """A study config.yaml of the layout before the sections were the trainers' configs:
    `training.extra` / `search.extra` merged into their sections, `training.seeds` moved to
    `training_seeds` (a copy; other keys untouched)."""
    data = json.loads(json.dumps(saved, default=str))
    for name in ("training", "search"):
        section = data.get(name)
        if isinstance(section, dict):
            section.update(section.pop("extra", None) or {})
    training = data.get("training")
    if isinstance(training, dict) and "seeds" in training:
        data["training_seeds"] = training.pop("seeds")
    return data


def _study_objectives(cfg: Study) -> list[str]:
    return [objective_name(o) for o in cfg.objectives]


def train_or_resume(train: Callable[..., dict[str, Any]], run_cfg: UnitConfig
                    ) -> dict[str, Any]:
    """`train(run_cfg, resume=...)` unless the run's summary.json exists (then its content);
    a run with a checkpoint continues from it, so a killed study loses at most `save_every`
    steps."""
    done = UnitDir(Path(run_cfg.out_dir)).summary
    if done.is_file():
        return read_json(done)
    resume = has_checkpoint(run_cfg.out_dir)
    if resume:
        say(f"resume {run_cfg.out_dir} from its last checkpoint")
    return train(run_cfg, resume=resume)


def fan_out(fn: Callable[..., T], jobs: list[dict[str, Any]], workers: int,
            names: list[str], ray_address: str | None = None,
            gpus_per_job: float = 0.0) -> list[T]:
    """The `workers` hook: jobs run here one by one (all threads) for 1 worker and no
    ``ray_address``; else as Ray tasks (`moalign.scale.ray_jobs.fan_out`), on a local cluster
    sharing this machine's cores or on the existing cluster at ``ray_address`` (e.g. ``auto``)."""
    if workers <= 1 and not ray_address:
        return [fn(**job) for job in jobs]
    cpus = 1 if ray_address else max(1, (os.cpu_count() or 1) // workers)
    return distributed_fan_out(fn, jobs, workers=workers, names=names, num_cpus=cpus,
                               ray_address=ray_address, num_gpus=gpus_per_job)


# ----------------------------------------------------------------------------- evaluation units


class LoadedModels(TypedDict, total=False):
    """What one evaluation seed loads for a group of systems: the policy (with the group's
    adapters) and, for EMORL's `ensemble` group, the seed's `Ensemble` and its searched weights."""

    policy: Policy
    ensemble: Ensemble
    weights: WeightsSpec


@dataclass
class System:
    key: str
    label: str
    group: str  # "ensemble": the seed's experts; "adapters": extra adapters on a fresh policy
    make: Callable[[LoadedModels], GenerateFn]  # loaded models -> its generation function


def base_label(name: str) -> str:
    return f"{Path(name).name} (untrained)"


def evaluate_unit(fn: GenerateFn, prompts: list[str], scorers: Sequence[Scorer], gen_seed: int
                  ) -> dict[str, Any]:
    """Generate once for every test prompt and score it (rewards, diversity-2, edit rate)."""
    t0 = time.perf_counter()
    responses = [r.strip() for r in fn(prompts, gen_seed)]
    s = score_responses(prompts, responses, scorers)
    return {"objectives": s["objectives"], "score": s["score"], "diversity2": s["diversity2"],
            "edit_rate": s["edit_rate"], "diversity2_authors": s["diversity2_authors"],
            "edit_rate_authors": s["edit_rate_authors"], "n": s["n"], "gen_seed": gen_seed,
            "seconds": round(time.perf_counter() - t0, 3), "prompts": prompts,
            "responses": responses, "per_example": s["per_example"]}


def run_units(cfg: Study, run_dir: Path, systems: list[System], prompts: list[str],
              load: Callable[[int, str], LoadedModels], objectives: list[Any]) -> int:
    """Evaluate every (system, seed, run) that has no unit file yet; load models lazily."""
    scorers, done = build_scorers(list(objectives)), 0
    for seed in cfg.evaluation.seeds:
        loaded: dict[str, LoadedModels] = {}
        for system in systems:
            for run in range(cfg.evaluation.runs):
                path = RunDir(run_dir).unit(system.key, seed, run)
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


# ----------------------------------------------------------------------------- summary


def _ms(values: list[float]) -> list[float] | None:
    return list(mean_std(values)) if values else None


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def method_row(key: str, label: str, units: list[dict[str, Any]], names: list[str],
               cost: dict[str, list[float]] | None) -> dict[str, Any]:
    return {"key": key, "label": label, "n": len(units),
            "rewards": {n: _ms([u["objectives"][n] for u in units]) for n in names},
            "mean_reward": _ms([u["score"] for u in units]),
            "diversity2": _ms([u["diversity2"] for u in units]),
            "edit_rate": _ms([u["edit_rate"] for u in units]),
            **{k: _ms([u[k] for u in units]) for k in ("diversity2_authors", "edit_rate_authors")
               if all(k in u for u in units)},  # units written before v0.2 lack them
            "data": _ms(cost["data"]) if cost else None,
            "data_paper": _ms(cost["data_paper"]) if cost and "data_paper" in cost else None,
            "seconds": _ms(cost["seconds"]) if cost else None}


def write_generations(run_dir: Path, key: str, units: list[dict[str, Any]],
                      names: list[str]) -> None:
    """eval/generations/<system>.jsonl: every response with its rewards (report, human eval)."""
    rows = []
    for u in units:
        for i, (p, r) in enumerate(zip(u["prompts"], u["responses"], strict=True)):
            rows.append({"seed": u["seed"], "run": u["run"], "index": i, "prompt": p,
                         "response": r, "rewards": {n: u["per_example"][n][i] for n in names}})
    write_jsonl(RunDir(run_dir).generations(key), rows)


def summarise(cfg: Study, run_dir: Path, systems: list[System],
              costs: dict[str, dict[str, list[float]]], n_prompts: int) -> dict[str, Any]:
    """eval/table.json (EMORL Table 1/2 numbers, mean ± std over seeds × runs)."""
    names = _study_objectives(cfg)
    methods = []
    for system in systems:
        units = [read_json(p) for p in RunDir(run_dir).unit_files(system.key)]
        if not units:
            continue
        methods.append(method_row(system.key, system.label, units, names, costs.get(system.key)))
        write_generations(run_dir, system.key, units, names)
    table = {"objectives": names, "seeds": cfg.evaluation.seeds, "runs": cfg.evaluation.runs,
             "training_seeds": training_seeds(cfg),
             "n_prompts": n_prompts, "methods": methods,
             "lexical_metrics": cfg.evaluation.lexical_metrics}
    atomic_write_json(RunDir(run_dir).table, table)
    return {"methods": [m["key"] for m in methods]}


def write_report(run_dir: Path) -> tuple[Path, Path]:
    """Always rebuilt (cheap): the report reflects every artifact present now."""
    html_path, md_path = build_report(run_dir)
    say(f"report: {html_path}")
    return html_path, md_path


def finish_study(run_dir: Path, seconds: float) -> None:
    run = RunDir(run_dir)
    study = read_json(run.study_json)
    study["last_invocation_seconds"] = round(seconds, 1)
    study["systems"] = [m["key"] for m in read_json(run.table)["methods"]]
    atomic_write_json(run.study_json, study)
