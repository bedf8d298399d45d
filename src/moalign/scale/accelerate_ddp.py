"""Run the SCST trainer under `accelerate launch` (DDP or FSDP) without changing its loop.

Launched with one process (or plain `python`), every helper here is a no-op and no Accelerator is
created, so ordinary runs are bit-for-bit what they were. With N > 1 processes:

* `process_config` (before `build_run`): creates the Accelerator, so ``device="auto"`` resolves to
  this process's GPU; ranks > 0 write into a scratch `out_dir/.ranks/rank<r>` (no two processes
  write the same file; on resume the scratch gets a copy of the main checkpoint) without a
  progress bar. The main process writes the real run directory: logs, checkpoints, adapter.
* `distribute_run` (after `build_run` and any `restore_state`):
  - DDP (`MULTI_CPU`/`MULTI_GPU`/...): the model is placed by Accelerate but *not* wrapped (the
    loop keeps calling `generate`, `disable_adapter`, `save_pretrained` on the PEFT model). Rank 0's
    trainable weights are broadcast, and after every backward pass ONE flat all-reduce averages
    the trainable gradients over processes — the DDP update, issued in a fixed order on every rank.
  - FSDP (version 2): ``accelerator.prepare(model, optimizer)`` shards the model in place (the
    module keeps its class, so `generate` still works and syncs ranks); FSDP reduces gradients.
  - each global batch of `batch_size` prompts is split between processes (identical cursor on
    every rank, so `data_consumed` stays global), and the sampling RNG is re-seeded per rank.
  Validation is greedy on identical weights, so every rank reaches the same convergence decision.
* `gather_rewards` / `is_main_process` / `wait_for_everyone` for logging and checkpoints.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import DistributedType

from moalign.core.config import ConfigError
from moalign.runs.layout import UnitDir

if TYPE_CHECKING:  # the SCST trainer imports this module (types only: no import cycle)
    from moalign.emorl.scst import PromptCursor, Run, SCSTConfig

RANKS_DIR = ".ranks"


# ----------------------------------------------------------------------------- the accelerator


def world_size() -> int:
    """Number of processes of this launch (1 when not started by `accelerate launch`/torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    """True in a multi-process launch that Accelerate runs data-parallel. (A CPU-only machine
    needs ``ACCELERATE_USE_CPU=true`` for `accelerate launch` to use gloo; otherwise Accelerate
    falls back to independent single processes, and so do we.)"""
    return world_size() > 1 and get_accelerator().num_processes > 1


@lru_cache(maxsize=1)
def get_accelerator() -> Accelerator:
    """The process's `accelerate.Accelerator` (created once; settings come from the launcher)."""
    return Accelerator()


def is_main_process() -> bool:
    """True on the process that writes logs, checkpoints and the final adapter."""
    return not is_distributed() or get_accelerator().is_main_process


def process_index() -> int:
    return get_accelerator().process_index if is_distributed() else 0


def wait_for_everyone() -> None:
    """Barrier across processes (no-op in a single process)."""
    if is_distributed():
        get_accelerator().wait_for_everyone()


def is_fsdp() -> bool:
    return is_distributed() and get_accelerator().distributed_type == DistributedType.FSDP


# ----------------------------------------------------------------------------- config per rank


def rank_out_dir(out_dir: str | Path, rank: int) -> Path:
    return Path(out_dir) / RANKS_DIR / f"rank{rank}"


def process_config(cfg: SCSTConfig, resume: bool = False) -> SCSTConfig:
    """This process's copy of a trainer config: unchanged on the main process (or without a
    distributed launch); on rank r > 0 `out_dir` becomes a scratch folder and `progress` is off.

    The Accelerator is created here, before the model is loaded, so ``device="auto"`` means this
    process's device. With `resume`, the scratch folder receives the main checkpoints
    (read-only)."""
    if not is_distributed():
        return cfg
    acc = get_accelerator()
    if acc.is_main_process or Path(cfg.out_dir).parent.name == RANKS_DIR:  # main, or done already
        return cfg
    scratch = rank_out_dir(cfg.out_dir, acc.process_index)
    shutil.rmtree(scratch, ignore_errors=True)
    for step, ckpt in UnitDir(Path(cfg.out_dir)).checkpoints() if resume else []:
        shutil.copytree(ckpt, UnitDir(scratch).checkpoint_at(step))
    return dataclasses.replace(cfg, out_dir=str(scratch), progress=False)


# ----------------------------------------------------------------------------- data sharding


@dataclasses.dataclass
class ShardedCursor:
    """Wraps the trainer's prompt cursor: every rank walks the same global order and keeps its
    contiguous share of each batch. `state_dict` is the global cursor's (same on every rank)."""

    inner: PromptCursor | ShardedCursor
    rank: int
    world: int

    def take(self, k: int) -> list[int]:
        if k % self.world:
            raise ConfigError(f"batch_size {k} must be divisible by the {self.world} processes "
                              "so that every process trains on the same number of prompts")
        idx = self.inner.take(k)
        share = k // self.world
        return idx[self.rank * share:(self.rank + 1) * share]

    def state_dict(self) -> dict[str, int]:
        return self.inner.state_dict()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# ----------------------------------------------------------------------------- gradients


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


@torch.no_grad()
def broadcast_parameters(params: list[torch.nn.Parameter], src: int = 0) -> None:
    """Copy rank `src`'s values of `params` to every process (one flat broadcast)."""
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    dist.broadcast(flat, src=src)
    _unflatten_into(flat, [p.data for p in params])


def _unflatten_into(flat: torch.Tensor, targets: list[torch.Tensor]) -> None:
    start = 0
    for t in targets:
        n = t.numel()
        t.copy_(flat[start:start + n].view_as(t))
        start += n


@torch.no_grad()
def all_reduce_gradients(params: list[torch.nn.Parameter]) -> None:
    """Average `.grad` over processes with one flat all-reduce (a missing grad counts as 0)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    for p, g in zip(params, grads, strict=True):
        if p.grad is None:
            p.grad = g
    _unflatten_into(flat, grads)  # each is its parameter's .grad now


class GradientAverager:
    """After every backward pass, average the trainable gradients over processes (DDP semantics).

    A post-accumulate hook on each parameter queues one callback per backward pass; the callback
    runs when autograd has finished and issues a single flat all-reduce over all parameters in
    a fixed order, so collectives match on every rank. Averaging after each of several
    micro-batch backwards is still exact: mean(g1 + g2_r) = g1 + mean(g2_r) once g1 is synced.
    """

    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        self.params = params
        self._queued = False
        self.handles = [p.register_post_accumulate_grad_hook(self._hook) for p in params]

    def _hook(self, _param: torch.Tensor) -> None:
        if not self._queued:
            self._queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._reduce)

    def _reduce(self) -> None:
        self._queued = False
        all_reduce_gradients(self.params)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


# ----------------------------------------------------------------------------- the run


def distribute_run(run: Run) -> Run:
    """Make a built (and possibly restored) trainer `Run` data-parallel; no-op in one process.

    Expects the trainer's `Run` fields: `policy`, `optimizer`, `cursor`, `cfg.seed`, `step`."""
    if not is_distributed() or run.distributed:
        return run
    acc = get_accelerator()
    policy = run.policy
    if is_fsdp():
        policy.model, run.optimizer = acc.prepare(policy.model, run.optimizer)
    else:
        policy.model = acc.prepare_model(policy.model, evaluation_mode=True)  # place, no wrap
        run.optimizer = acc.prepare_optimizer(run.optimizer)
        params = trainable_parameters(policy.model)
        broadcast_parameters(params)
        run.grad_averager = GradientAverager(params)
    run.cursor = ShardedCursor(run.cursor, acc.process_index, acc.num_processes)
    torch.manual_seed(int(run.cfg.seed) * 1_000_003 + 7919 * acc.process_index + int(run.step))
    run.distributed = True
    return run


def gather_rewards(rewards: torch.Tensor) -> torch.Tensor:
    """Concatenate a per-process reward tensor (N, ...) over processes, for logging global means
    (every process must call it with the same shape); returns `rewards` in a single process."""
    if not is_distributed():
        return rewards
    acc = get_accelerator()
    return acc.gather(rewards.to(acc.device)).cpu()


def gather_mean(value: float) -> float:
    """Mean of a scalar over processes (e.g. a loss for the log)."""
    if not is_distributed():
        return float(value)
    acc = get_accelerator()
    return float(acc.reduce(torch.tensor([float(value)], device=acc.device), "mean").item())
