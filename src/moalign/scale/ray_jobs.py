"""Fan independent jobs out over a Ray cluster: expert training and search evaluations.

EMORL trains its experts independently, so they parallelise perfectly: one Ray task per expert,
each with its own CPUs/GPUs, seed and output folder. `fan_out` is the single primitive:

* ``workers <= 1`` and no address: the jobs run here, one after the other (Ray is not used);
* ``ray_address`` given: connect to that cluster (``ray.init(address)``; ``"auto"`` works);
* otherwise: start a local cluster bound to loopback (127.0.0.1) with room for `workers` jobs
  (``num_cpus = workers x CPUs per job``), no dashboard, and shut it down afterwards. A Ray
  session that is already initialised is reused.

Results come back in job order; the first failing job cancels the others and its error is
re-raised (same exception type where possible) with the job named. Every job runs with
``torch.set_num_threads(num_cpus)``, in the sequential path too, so a sequential and a parallel
run do the same arithmetic. Scheduling is Ray's: no queue or process pool of our own.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import ray
import torch
from ray import cloudpickle
from ray._private import ray_constants

from moalign.algorithms.grid_search import EvalResult, EvaluateFn, Point
from moalign.core.checkpoint import has_checkpoint
from moalign.core.config import ConfigError, require
from moalign.core.naming import objective_name
from moalign.emorl.manifest import load_ensemble
from moalign.emorl.scst import SCSTConfig, train_scst
from moalign.evaluation.evaluate import make_weight_evaluator
from moalign.rewards.scorers import build_scorers

T = TypeVar("T")

# Ray resolves "127.0.0.1" to the machine's outward address on Linux unless clusters are
# "disabled", which is exactly what a single-machine loopback cluster wants (see ray_constants).
_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass
class DistributedConfig:
    """How to fan out: `workers` parallel jobs, on `ray_address` or a local loopback cluster."""

    workers: int = 1  # > 1 starts a local Ray cluster with that many CPUs (unless ray_address)
    ray_address: str | None = None  # e.g. "auto" or "10.0.0.1:6379": an existing cluster
    num_cpus: float = 1.0  # CPUs per job (also the job's torch thread count)
    num_gpus: float = 0.0  # GPUs per job (fractions share a GPU)

    def validate(self) -> None:
        require(self.workers >= 1, f"workers must be >= 1, got {self.workers}")
        require(self.num_cpus > 0, f"num_cpus must be > 0, got {self.num_cpus}")
        require(self.num_gpus >= 0, f"num_gpus must be >= 0, got {self.num_gpus}")

    @property
    def uses_ray(self) -> bool:
        return self.workers > 1 or self.ray_address is not None


class JobError(RuntimeError):
    """A fanned-out job failed and its exception type could not carry the job's name."""


# ----------------------------------------------------------------------------- job execution


@contextmanager
def torch_threads(n: float) -> Iterator[None]:
    """Run with `int(n)` (at least 1) torch intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _extend_sys_path(paths: Sequence[str]) -> None:
    """Make the driver's import paths (e.g. a tests folder) importable in a worker process."""
    for p in reversed(list(paths)):
        if p and p not in sys.path and os.path.isdir(p):
            sys.path.insert(0, p)


def run_job(payload: bytes, sys_path: Sequence[str], num_threads: float) -> Any:
    """Body of every job: restore import paths, unpickle `(fn, kwargs)`, run with N threads.

    The payload is pickled by the driver so that unpickling happens *after* the paths are set:
    a function or scorer from a module only the driver's `sys.path` knows still imports.
    """
    _extend_sys_path(sys_path)
    fn, kwargs = cloudpickle.loads(payload)
    with torch_threads(num_threads):
        return fn(**kwargs)


def _job_name(names: Sequence[str] | None, i: int) -> str:
    return names[i] if names is not None else f"job {i}"


def _named_error(name: str, cause: BaseException) -> BaseException:
    """The same exception type with the job's name in front of its message, else `JobError`."""
    message = f"{name} failed: {type(cause).__name__}: {cause}"
    try:
        err = type(cause)(message)
        if str(err) != message:
            raise TypeError("exception type rewrites its message")
    except Exception:
        err = JobError(message)
    err.job = name  # type: ignore[attr-defined]
    return err


def _run_sequential(fn: Callable[..., T], jobs: Sequence[dict[str, Any]],
                    names: Sequence[str] | None, num_cpus: float) -> list[T]:
    results = []
    for i, kwargs in enumerate(jobs):
        try:
            with torch_threads(num_cpus):
                results.append(fn(**kwargs))
        except Exception as e:
            raise _named_error(_job_name(names, i), e) from e
    return results


# ----------------------------------------------------------------------------- Ray session


@contextmanager
def _loopback_only() -> Iterator[None]:
    """While starting a local cluster, make Ray bind every service to 127.0.0.1."""
    old_env, old_flag = os.environ.get(_LOOPBACK_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_LOOPBACK_ENV] = "0"  # inherited by the raylet, GCS and workers it starts
    ray_constants.ENABLE_RAY_CLUSTER = False  # this process (ray is already imported)
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = old_flag
        if old_env is None:
            os.environ.pop(_LOOPBACK_ENV, None)
        else:
            os.environ[_LOOPBACK_ENV] = old_env


def start_local_cluster(num_cpus: int, num_gpus: int | None = None, **kwargs: Any) -> Any:
    """`ray.init` a local cluster on loopback with `num_cpus` CPUs and no dashboard."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with _loopback_only():
        return ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                        _node_ip_address="127.0.0.1", **kwargs)


@contextmanager
def ray_session(workers: int, ray_address: str | None = None,
                num_cpus: float = 1.0) -> Iterator[None]:
    """Reuse an initialised Ray, else connect to `ray_address` or start a local cluster with CPUs
    for `workers` concurrent jobs of `num_cpus` each (GPUs are detected); only a session started
    here is shut down on exit."""
    if ray.is_initialized():
        yield
        return
    if ray_address:
        ray.init(address=ray_address)
    else:
        start_local_cluster(num_cpus=max(1, math.ceil(workers * num_cpus)))  # GPUs: detected
    try:
        yield
    finally:
        ray.shutdown()


def _cause(err: BaseException) -> BaseException:
    """The user's exception inside a Ray task error (RayTaskError keeps it as `.cause`)."""
    return getattr(err, "cause", None) or err


def _run_ray(fn: Callable[..., T], jobs: Sequence[dict[str, Any]], names: Sequence[str] | None,
             num_cpus: float, num_gpus: float) -> list[T]:
    task = ray.remote(run_job)
    paths = [p for p in sys.path if p]
    refs = [task.options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0,
                         name=_job_name(names, i)).remote(cloudpickle.dumps((fn, kwargs)), paths,
                                                          num_cpus)
            for i, kwargs in enumerate(jobs)]
    index = {ref: i for i, ref in enumerate(refs)}
    results: dict[int, T] = {}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        i = index[done[0]]
        try:
            results[i] = ray.get(done[0])
        except Exception as e:
            for ref in pending:
                ray.cancel(ref, force=True)
            cause = _cause(e)
            raise _named_error(_job_name(names, i), cause) from cause
    return [results[i] for i in range(len(refs))]


def fan_out(fn: Callable[..., T], jobs: Sequence[dict[str, Any]], workers: int = 1,
            ray_address: str | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0,
            names: Sequence[str] | None = None) -> list[T]:
    """Run `fn(**job)` for every job; return the results in job order.

    Sequential here when ``workers <= 1`` and no ``ray_address``; otherwise one Ray task per job
    reserving ``num_cpus``/``num_gpus`` (on the already initialised Ray session if there is
    one). `fn` and the job kwargs must be picklable; `names` label the jobs in errors (default
    ``job <i>``).
    """
    cfg = DistributedConfig(workers, ray_address, num_cpus, num_gpus)
    cfg.validate()
    require(names is None or len(names) == len(jobs),
            f"{len(names or [])} names for {len(jobs)} jobs")
    if not jobs:
        return []
    if not cfg.uses_ray:
        return _run_sequential(fn, jobs, names, num_cpus)
    with ray_session(workers, ray_address, num_cpus):
        return _run_ray(fn, jobs, names, num_cpus, num_gpus)


# ----------------------------------------------------------------------------- expert training


def _train_one(cfg: SCSTConfig, resume: bool) -> dict[str, Any]:
    return train_scst(cfg, resume=resume and has_checkpoint(cfg.out_dir))


def _expert_label(cfg: SCSTConfig) -> str:
    first = objective_name(cfg.objectives[0], strict=False) if cfg.objectives else "?"
    return str(cfg.adapter_name or (first if cfg.method == "expert" else cfg.method))


def train_experts_parallel(configs: Sequence[SCSTConfig], workers: int | None = None,
                           ray_address: str | None = None, num_cpus: float = 1.0,
                           num_gpus: float = 0.0, resume: bool = False) -> list[dict[str, Any]]:
    """Train SCST experts (one `SCSTConfig` each) as independent jobs; return their summaries.

    Each expert is its own Ray task (own process, own seed from its config, own `out_dir`,
    `num_cpus` torch threads). `workers` defaults to one per expert; ``workers=1`` without an
    address trains them here one after the other. With ``resume``, an expert that has a
    checkpoint continues from it.
    """
    configs = list(configs)
    for cfg in configs:
        cfg.validate()
    dirs = [str(Path(c.out_dir).resolve()) for c in configs]
    dupes = sorted({d for d in dirs if dirs.count(d) > 1})
    if dupes:
        raise ConfigError(f"experts share out_dir {dupes}; give each expert its own folder")
    jobs = [{"cfg": dataclasses.replace(c), "resume": resume} for c in configs]
    names = [f"expert {_expert_label(c)} ({c.out_dir})" for c in configs]
    n = len(configs) if workers is None else workers
    return fan_out(_train_one, jobs, n, ray_address, num_cpus, num_gpus, names)


# ----------------------------------------------------------------------------- search evaluation

_EVALUATORS: dict[bytes, EvaluateFn] = {}  # per process: pickled factory+kwargs -> evaluator


def _evaluate_chunk(factory: Callable[..., EvaluateFn], factory_kwargs: dict[str, Any],
                    points: list[Point]) -> list[EvalResult]:
    """Build (or reuse, in this process) the evaluator, then evaluate one chunk of points."""
    key = cloudpickle.dumps((factory, sorted(factory_kwargs.items())))
    if key not in _EVALUATORS:
        _EVALUATORS.clear()  # one loaded model per process at a time
        _EVALUATORS[key] = factory(**factory_kwargs)
    return list(_EVALUATORS[key](points))


def chunk_points(points: Sequence[T], n_chunks: int) -> list[list[T]]:
    """Split into at most `n_chunks` contiguous chunks of near-equal size (order preserved)."""
    n = max(1, min(n_chunks, len(points)))
    size, extra = divmod(len(points), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(list(points[start:end]))
        start = end
    return [c for c in out if c]


def evaluate_points_parallel(factory: Callable[..., EvaluateFn], factory_kwargs: dict[str, Any],
                             points: Sequence[Sequence[float]], workers: int = 1,
                             ray_address: str | None = None, num_cpus: float = 1.0,
                             num_gpus: float = 0.0, chunk_size: int | None = None
                             ) -> list[EvalResult]:
    """Evaluate weight points in chunks over workers; results in point order.

    `factory(**factory_kwargs)` must return a search `EvaluateFn` (``points -> results``), e.g.
    `evaluate.make_weight_evaluator`; each worker process builds it once (the ensemble is
    loaded once per process) and reuses it for later chunks. `chunk_size` defaults to an even
    split over `workers`.
    """
    points = [tuple(float(x) for x in p) for p in points]
    if not points:
        return []
    n_chunks = workers if chunk_size is None else -(-len(points) // max(1, chunk_size))
    chunks = chunk_points(points, n_chunks)
    jobs = [{"factory": factory, "factory_kwargs": factory_kwargs, "points": c} for c in chunks]
    names = [f"weight points {c[0]}..{c[-1]} ({len(c)})" for c in chunks]
    parts = fan_out(_evaluate_chunk, jobs, workers, ray_address, num_cpus, num_gpus, names)
    return [r for part in parts for r in part]


def ensemble_evaluator(run_dir: str, prompts: Sequence[str],
                       objectives: Sequence[Any] | None = None, device: str = "auto",
                       **kwargs: Any) -> EvaluateFn:
    """A picklable evaluator factory for `evaluate_points_parallel`: in the worker process, load
    the ensemble of `run_dir`, build the scorers (default: one per expert, by objective name) and
    return `evaluate.make_weight_evaluator` over `prompts` (`kwargs` go to it; the
    manifest's system prompt is the default `system`)."""
    ensemble, manifest = load_ensemble(run_dir, device=device)
    scorers = build_scorers(list(objectives or manifest.objectives))
    kwargs.setdefault("system", manifest.system)
    return make_weight_evaluator(ensemble, list(prompts), scorers, **kwargs)
