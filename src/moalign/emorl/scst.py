"""SCST experts (EMORL §5.1) and the multi-objective SCST baselines of EMORL §3 (uniform, DynaOpt).

One readable loop, `train_scst`, does everything; the maths lives in `moalign.algorithms.losses`:

    validate the untrained policy (step 0)
    repeat until converged or max_steps:
        prompts  <- next `batch_size` prompts (deterministic shuffled cursor, epochs wrap)
        rollout  <- `n_samples` responses per prompt, sampled in eval mode (no LoRA dropout)
        R        <- score_matrix(scorers, prompts, responses)                  (B·n, K)
        r        <- combine_rewards(transform_reward(R), weights)              (B·n,)
        A        <- scst_advantages(r, n)          (reward − mean of the prompt's n samples)
        loss     <- scst_loss(log π (train mode), A, per-sample KL)  -> backward, clip, AdamW
        every `val_every` steps: greedy validation on a fixed batch, DynaOpt update, convergence
        every `save_every` steps: checkpoint-<step>/ (adapter, optimizer, RNG, cursor, bandit, ...)

The reward transform is applied per objective *before* the weighting (the authors' "logsum":
Σ_k λ_k·log r_k); for an expert (K = 1) the order does not matter. Validation rewards are always
the raw scores. Lower-is-better objectives are negated for training, for DynaOpt and for the
validation `mean`. log π is taken at the sampling temperature (on-policy). Convergence: the last
`window` validation means (mean over objectives, step 0 included) have std/|mean| < `tol`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from moalign.algorithms.dynaopt import DynaOpt
from moalign.algorithms.losses import (
    combine_rewards,
    per_sample_kl,
    scst_advantages,
    scst_loss,
    transform_reward,
)
from moalign.core.checkpoint import (
    has_checkpoint,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    start_unit,
)
from moalign.core.config import require, require_each
from moalign.core.errors import DataError
from moalign.core.io import atomic_write_json
from moalign.core.naming import check_objectives
from moalign.core.tracking import drop_metrics_after
from moalign.data import deterministic_split, load_prompts
from moalign.evaluation.metrics import mean_std
from moalign.models import Policy, attach_lora, disable_dropout, load_policy, save_adapter
from moalign.rewards.scorers import Scorer, build_scorers, score_matrix
from moalign.rollout import (
    Rollout,
    eos_token_ids,
    policy_logprobs,
    reference_logprobs,
    sample,
)
from moalign.runs.layout import UnitDir
from moalign.sampling import Sampling
from moalign.scale.accelerate_ddp import (
    GradientAverager,
    ShardedCursor,
    distribute_run,
    gather_mean,
    gather_rewards,
)

METHODS = ("expert", "uniform", "dynaopt")


@dataclass
class SCSTConfig:
    """SCST training of one expert (`method: expert`) or a multi-objective baseline."""

    policy: str = "smollm2-135m-instruct"  # bundled id, local model folder, or HF id (causal/T5)
    objectives: list[Any] = field(default_factory=lambda: ["reflection"])  # scorer names/specs
    method: Literal["expert", "uniform", "dynaopt"] = "expert"
    weights: list[float] | None = None  # uniform: fixed λ (K entries, ≥ 0); default 1/K each
    data: Any = "counsel_train"  # embedded name, file path, load_prompts dict, or a list of prompts
    column: str = "prompt"  # prompt column of `data` / `val_data` files
    val_data: Any = "counsel_val"  # validation source; null: hold out `val_batch` from `data`
    system: str | None = None  # system prompt (chat models) or prefix (others)
    n_samples: int = 3  # responses sampled per prompt (SCST baseline = their mean reward)
    temperature: float = 1.0
    max_new_tokens: int = 64
    max_prompt_tokens: int = 256
    batch_size: int = 16  # prompts per step (data consumed per step)
    micro_batch: int = 0  # sequences per forward/backward chunk (0: the whole step at once)
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float = 2.0
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    kl_coef: float = 0.0  # per-sample KL(π || π0) penalty (0: off)
    count_eos: bool = True  # the final EOS token counts in the loss (the authors' code: false)
    reward_transform: Literal["identity", "log"] = "identity"
    val_every: int = 8
    # validation: `greedy_batch` = the first `val_batch` validation prompts, one greedy response
    # each (cheap); `sampled_split` = the EMORL authors' protocol: every validation prompt,
    # `val_samples` responses each sampled at `temperature`, `val_batch` prompts per decode
    val_protocol: Literal["greedy_batch", "sampled_split"] = "greedy_batch"
    val_batch: int = 8
    val_samples: int = 3  # sampled_split: responses per validation prompt (authors: 3)
    window: int = 20  # convergence window (validations)
    tol: float = 0.015  # converged when std/|mean| of the last `window` validation means < tol
    max_steps: int = 500
    save_every: int = 50  # checkpoint period in steps (0: only at the end)
    keep_checkpoints: int = 2  # numbered checkpoints kept (checkpoint-<step>/, newest last)
    seed: int = 0
    out_dir: str = "runs/scst"
    adapter_name: str | None = None  # default: the objective's name (expert) or the method
    dynaopt_gamma: float = 0.07
    dynaopt_window: int = 5  # outer reward vs the mean of this many past validations (authors: 1)
    loggers: list[str] = field(default_factory=list)  # extra: tensorboard, wandb, mlflow
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA, fp32 CPU
    progress: bool = True

    def validate(self) -> None:
        check_objectives(self.objectives, "reflection")
        K = len(self.objectives)
        if self.method == "expert":
            require(K == 1, f"method=expert trains one objective, got {K}: {self.objectives}; "
                    "use method=uniform or method=dynaopt for several")
        if self.weights is not None:
            require(self.method != "dynaopt", "method=dynaopt sets the weights itself; remove "
                    "`weights`")
            self._validate_weights(K)
        require_each(self, ("n_samples", "max_new_tokens", "batch_size", "val_every", "val_batch",
                            "val_samples", "window", "max_steps", "lora_r", "max_prompt_tokens"),
                     lambda v: v >= 1, ">= 1")
        require(self.n_samples >= 2, f"n_samples must be >= 2 for the SCST baseline (mean of the "
                f"prompt's samples), got {self.n_samples}")
        require_each(self, ("lr", "temperature", "grad_clip", "tol"),
                     lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
        require(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got "
                f"{self.lora_dropout}")
        require(self.kl_coef >= 0, f"kl_coef must be >= 0, got {self.kl_coef}")
        require(self.save_every >= 0 and self.micro_batch >= 0,
                "save_every and micro_batch must be >= 0")
        require(self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1 (the newest "
                f"checkpoint is always kept), got {self.keep_checkpoints}")
        require(0.0 < self.dynaopt_gamma <= 1.0 and self.dynaopt_window >= 1,
                "dynaopt_gamma must be in (0, 1] (paper: 0.07) and dynaopt_window >= 1")

    def _validate_weights(self, K: int) -> None:
        w = self.weights or []
        require(len(w) == K, f"weights has {len(w)} entries but there are {K} objectives "
                f"{self.objectives}; give one weight per objective, e.g. "
                f"weights={[round(1 / K, 3)] * K}")
        require(all(math.isfinite(x) for x in w), f"weights must be finite numbers, got {w}")
        require(all(x >= 0 for x in w), f"weights must be >= 0, got {w}")
        require(sum(w) > 0, f"weights are all zero ({w}); give at least one weight > 0")

    def resolved_weights(self) -> list[float]:
        K = len(self.objectives)
        return [float(x) for x in self.weights] if self.weights else [1.0 / K] * K


# ----------------------------------------------------------------------------- data


@dataclass
class PromptCursor:
    """Walks a prompt list in a per-epoch shuffled order (seeded); epochs wrap. Resumable."""

    n: int
    seed: int
    epoch: int = 0
    pos: int = 0

    def _order(self) -> list[int]:
        order = list(range(self.n))
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return order

    def take(self, k: int) -> list[int]:
        out: list[int] = []
        while len(out) < k:
            order = self._order()
            chunk = order[self.pos:self.pos + k - len(out)]
            out.extend(chunk)
            self.pos += len(chunk)
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
        return out

    def state_dict(self) -> dict[str, int]:
        return {"n": self.n, "seed": self.seed, "epoch": self.epoch, "pos": self.pos}


def _source(spec: Any, column: str) -> list[str] | dict[str, Any]:
    if isinstance(spec, list | tuple):  # prompts given directly (Python API)
        return list(spec)
    if isinstance(spec, dict):
        return {"column": column, **spec}
    return {"path": str(spec), "column": column}


def load_prompt_splits(cfg: SCSTConfig) -> tuple[list[str], list[str]]:
    """(training prompts, validation prompts); `val_data: null` holds out `val_batch`. With
    `val_protocol: greedy_batch` only the first `val_batch` of `val_data` validate, with
    `sampled_split` all of them."""
    train = load_prompts(_source(cfg.data, cfg.column))
    if cfg.val_data is None:
        if len(train) <= cfg.val_batch:
            raise DataError(f"{len(train)} prompts cannot give {cfg.val_batch} validation "
                            "prompts and a training set; set val_data or a smaller val_batch")
        (shuffled,) = deterministic_split(train, (1.0,), seed=0)
        return shuffled[cfg.val_batch:], shuffled[:cfg.val_batch]
    val = load_prompts(_source(cfg.val_data, cfg.column))
    return train, val[:cfg.val_batch] if cfg.val_protocol == "greedy_batch" else val


# ----------------------------------------------------------------------------- setup


@dataclass
class Run:
    """Everything the loop works on; `state` is what a checkpoint must restore."""

    cfg: SCSTConfig
    policy: Policy
    scorers: Sequence[Scorer]
    names: list[str]
    signs: list[float]  # +1 higher-is-better, -1 lower-is-better (negated for training)
    adapter: str
    optimizer: torch.optim.Optimizer
    train_prompts: list[str]
    val_prompts: list[str]
    cursor: PromptCursor | ShardedCursor  # sharded over processes by `distribute_run`
    bandit: DynaOpt | None = None  # method=dynaopt
    bandit_rng: random.Random = field(default_factory=random.Random)
    step: int = 0
    seconds: float = 0.0
    val_history: list[dict[str, float]] = field(default_factory=list)
    converged: bool = False
    distributed: bool = False  # set by `scale.accelerate_ddp.distribute_run`
    grad_averager: GradientAverager | None = None  # DDP's, kept alive with the run

    @property
    def data_consumed(self) -> int:
        return self.step * self.cfg.batch_size

    def weights(self) -> list[float]:
        return self.bandit.reward_weights() if self.bandit else self.cfg.resolved_weights()


def adapter_name_for(cfg: SCSTConfig, names: list[str]) -> str:
    raw = cfg.adapter_name or (names[0] if cfg.method == "expert" else cfg.method)
    return re.sub(r"[^0-9A-Za-z_]", "_", raw) or "expert"


def build_run(cfg: SCSTConfig) -> Run:
    """Seed, load data, scorers and policy, attach the LoRA adapter, make the optimizer."""
    seed_everything(cfg.seed)
    scorers = build_scorers(cfg.objectives)
    names = [s.name for s in scorers]
    signs = [1.0 if s.higher_is_better else -1.0 for s in scorers]
    require(cfg.reward_transform != "log" or min(signs) > 0, "reward_transform=log needs "
            f"scores in (0, 1) where higher is better; {names} has a lower-is-better objective")
    train, val = load_prompt_splits(cfg)
    policy = load_policy(cfg.policy, device=cfg.device)
    policy.precision = cfg.precision  # autocast of sampling and the gradient pass
    disable_dropout(policy.model)
    adapter = adapter_name_for(cfg, names)
    attach_lora(policy, adapter, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)
    params = [p for p in policy.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    bandit = (DynaOpt(len(scorers), cfg.dynaopt_gamma, cfg.dynaopt_window)
              if cfg.method == "dynaopt" else None)
    return Run(cfg, policy, scorers, names, signs, adapter, optimizer, train, val,
               PromptCursor(len(train), cfg.seed), bandit, random.Random(cfg.seed))


# ----------------------------------------------------------------------------- one step


def train_logprobs(policy: Policy, r: Rollout, temperature: float) -> torch.Tensor:
    """log π(y_t) of the response tokens with gradients (N, T); causal LMs compute logits only
    for the response positions and, without dropout, run each prompt once for its n samples
    (`rollout.logits_for_response`)."""
    return policy_logprobs(policy, r, temperature)


def loss_mask(policy: Policy, r: Rollout, count_eos: bool) -> torch.Tensor:
    """The response tokens the SCST loss and KL count (N, T): all of them up to and including
    EOS, or (`count_eos: false`, the EMORL authors' code) all but the final EOS token."""
    if count_eos:
        return r.response_mask
    eos = torch.tensor(eos_token_ids(policy), device=r.response_ids.device)
    return r.response_mask * ~torch.isin(r.response_ids, eos)  # (N, T), mask's dtype


def scst_step(run: Run, prompts: list[str]) -> dict[str, float]:
    """Sample, score, weight, and take one optimizer step; return the step's statistics."""
    cfg, policy = run.cfg, run.policy
    sampling = Sampling(cfg.max_new_tokens, do_sample=True, temperature=cfg.temperature)
    rollout = sample(policy, prompts, sampling, n=cfg.n_samples, system=cfg.system,
                     max_prompt_tokens=cfg.max_prompt_tokens)
    R = score_matrix(run.scorers, rollout.prompts, rollout.responses).float().cpu()  # (N, K)
    weights = run.weights()
    signed = R * torch.tensor(run.signs)  # (N, K) higher is better
    rewards = combine_rewards(transform_reward(signed, cfg.reward_transform), weights)  # (N,)
    adv = scst_advantages(rewards, cfg.n_samples)  # (N,)
    policy.model.train()  # LoRA dropout on for the gradient pass
    run.optimizer.zero_grad(set_to_none=True)
    N = len(rollout)
    chunk = cfg.micro_batch or N
    loss_total, kl_total = 0.0, 0.0
    for start in range(0, N, chunk):
        part = rollout.select(list(range(start, min(start + chunk, N))))
        logp = train_logprobs(policy, part, cfg.temperature)  # (n, T)
        mask = loss_mask(policy, part, cfg.count_eos)  # (n, T)
        kl = None
        if cfg.kl_coef > 0:
            ref = reference_logprobs(policy, part, cfg.temperature)
            kl = per_sample_kl(logp, ref, mask)  # (n,)
            kl_total += kl.detach().sum().item()
        a = adv[start:start + len(part)].to(logp.device)
        loss = scst_loss(logp, mask, a, kl, cfg.kl_coef) * (len(part) / N)
        loss.backward()
        loss_total += loss.item()
    params = [p for p in policy.model.parameters() if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip).item()
    run.optimizer.step()
    policy.model.eval()
    R_all, r_all = gather_rewards(R), gather_rewards(rewards)  # all processes (for the log)
    stats: dict[str, float] = {"loss": gather_mean(loss_total), "grad_norm": grad_norm,
                             "reward": r_all.mean().item(), "kl": gather_mean(kl_total / N),
                             "response_tokens": int(rollout.response_mask.sum().item())}
    for k, name in enumerate(run.names):
        stats[f"reward/{name}"] = R_all[:, k].mean().item()
        stats[f"weight/{name}"] = float(weights[k])
    return stats


@torch.no_grad()
def validation_scores(run: Run) -> torch.Tensor:
    """Raw scores (M, K) of the validation responses (`val_protocol`): one greedy response per
    fixed prompt, or `val_samples` responses per prompt of the whole split sampled at
    `temperature`, `val_batch` prompts per decode, with a seed of (seed, step, chunk) only (the
    training RNG is untouched, so a resumed run validates identically)."""
    cfg = run.cfg
    if cfg.val_protocol == "greedy_batch":
        chunks, n, sampling = [run.val_prompts], 1, Sampling.greedy(cfg.max_new_tokens)
    else:
        chunks = [run.val_prompts[i:i + cfg.val_batch]
                  for i in range(0, len(run.val_prompts), cfg.val_batch)]
        n, sampling = cfg.val_samples, Sampling(cfg.max_new_tokens, do_sample=True,
                                                temperature=cfg.temperature)
    scores = []
    for i, prompts in enumerate(chunks):
        seed = (cfg.seed * 1_000_003 + run.step) * 1_009 + i
        r = sample(run.policy, prompts, sampling.with_seed(seed), n=n, system=cfg.system,
                   max_prompt_tokens=cfg.max_prompt_tokens)
        scores.append(score_matrix(run.scorers, r.prompts, r.responses).float())  # (B·n, K)
    return torch.cat(scores)


def validate(run: Run) -> dict[str, float]:
    """Validation responses (`validation_scores`): the mean raw score per objective, and
    `mean` = the mean over objectives of the higher-is-better (sign-flipped) means."""
    means = validation_scores(run).mean(dim=0).tolist()
    out = {name: float(m) for name, m in zip(run.names, means, strict=True)}
    out["mean"] = sum(s * m for s, m in zip(run.signs, means, strict=True)) / len(means)
    return out


def has_converged(val_means: list[float], window: int, tol: float) -> bool:
    """True when the last `window` validation means have std/|mean| < tol (population std)."""
    if len(val_means) < window:
        return False
    last = torch.tensor(val_means[-window:], dtype=torch.float64)
    mean, std = last.mean().abs().item(), last.std(unbiased=False).item()
    return std == 0.0 or (mean > 0 and std / mean < tol)


def validation_record(run: Run, final: bool = False) -> dict[str, float]:
    """Validate, feed DynaOpt, check convergence; return the metrics to log. The `final`
    validation (after max_steps off the validation schedule) only measures."""
    val = validate(run)
    run.val_history.append({"step": run.step, "data_consumed": run.data_consumed, **val})
    rec: dict[str, float] = {f"val/{k}": v for k, v in val.items()}
    if final:
        return {**rec, "final": True}
    if run.bandit is not None:
        signed = [s * val[n] for s, n in zip(run.signs, run.names, strict=True)]
        info = run.bandit.after_validation(signed, run.bandit_rng)
        rec.update({"bandit/outer_arm": info["outer_arm"],
                    "bandit/outer_reward": info["outer_reward"]})
        rec.update({f"bandit/weight/{n}": w for n, w in zip(run.names, info["weights"],
                                                              strict=True)})
    means = [v["mean"] for v in run.val_history]
    run.converged = has_converged(means, run.cfg.window, run.cfg.tol)
    rec["converged"] = run.converged
    return rec


# ----------------------------------------------------------------------------- checkpoints


def save_state(run: Run) -> None:
    extra = {"cursor": run.cursor.state_dict(), "seconds": run.seconds,
             "val_history": run.val_history, "converged": run.converged,
             "bandit": run.bandit.state_dict() if run.bandit else None,
             "bandit_rng": run.bandit_rng.getstate()}
    save_checkpoint(run.cfg.out_dir, run.policy, [run.adapter], run.step, run.optimizer,
                    extra=extra, keep=run.cfg.keep_checkpoints)


def restore_state(run: Run) -> None:
    """Load the checkpoint into `run` and drop metrics logged after it (a killed run's tail)."""
    state = load_checkpoint(run.cfg.out_dir, run.policy, [run.adapter], run.optimizer)
    extra = state["extra"]
    run.step, run.seconds = int(state["step"]), float(extra["seconds"])
    require(extra["cursor"]["n"] == len(run.train_prompts),
            f"the checkpoint in {run.cfg.out_dir} was trained on {extra['cursor']['n']} prompts "
            f"but `data` now has {len(run.train_prompts)}; resume with the same data")
    run.cursor = PromptCursor(**extra["cursor"])
    run.val_history, run.converged = list(extra["val_history"]), bool(extra["converged"])
    if run.bandit is not None:
        run.bandit.load_state_dict(extra["bandit"])
    run.bandit_rng.setstate(extra["bandit_rng"])
    drop_metrics_after(UnitDir(Path(run.cfg.out_dir)).metrics, run.step)


# ----------------------------------------------------------------------------- the loop


def _progress(run: Run) -> tqdm:
    return tqdm(total=run.cfg.max_steps, initial=run.step, disable=not run.cfg.progress,
                desc=f"scst {run.adapter}", unit="step", dynamic_ncols=True)


def _postfix(stats: dict[str, float], run: Run) -> dict[str, str]:
    post = {n[:12]: f"{stats[f'reward/{n}']:.3f}" for n in run.names}
    if run.val_history:
        last = run.val_history[-1]  # with its step: it is as old as the last validation
        post["val"] = f"{last['mean']:.3f}@{last['step']}"
    post["samples/s"] = f"{stats['samples_per_s']:.1f}"
    return post


def train_scst(cfg: SCSTConfig, resume: bool = False) -> dict[str, Any]:
    """Train an SCST expert / baseline into `cfg.out_dir`; return (and write) summary.json.

    `seconds` counts training steps and their validations (not model loading nor the step-0 /
    final validations) and accumulates across resumes. With `resume`, the run continues from
    the newest complete checkpoint in `out_dir` and reaches the same adapter and metrics as an
    uninterrupted run.
    """
    cfg.validate()
    run = build_run(cfg)
    if resume:
        restore_state(run)
    run = distribute_run(run)  # no-op unless started by `accelerate launch` with > 1 process
    logger = start_unit(cfg, cfg.out_dir, cfg.loggers, resume)  # fresh: old log, checkpoints go
    if not run.val_history:  # step 0: the untrained policy is always validated
        logger.log({"data_consumed": 0, "seconds": 0.0, **validation_record(run)}, step=0)
    bar = _progress(run)
    while not run.converged and run.step < cfg.max_steps:
        t0 = time.perf_counter()
        prompts = [run.train_prompts[i] for i in run.cursor.take(cfg.batch_size)]
        stats = scst_step(run, prompts)
        run.step += 1
        step_seconds = time.perf_counter() - t0
        stats["samples_per_s"] = len(prompts) * cfg.n_samples / step_seconds
        if run.step % cfg.val_every == 0:
            stats.update(validation_record(run))
        run.seconds += time.perf_counter() - t0
        stats.update(data_consumed=run.data_consumed, seconds=round(run.seconds, 3),
                     step_seconds=round(step_seconds, 4))
        logger.log(stats, step=run.step)
        bar.update(1)
        bar.set_postfix(_postfix(stats, run))
        if cfg.save_every and run.step % cfg.save_every == 0:
            save_state(run)
    bar.close()
    if run.val_history[-1]["step"] != run.step:  # make sure "after" is the final policy
        logger.log({"data_consumed": run.data_consumed, "seconds": round(run.seconds, 3),
                    **validation_record(run, final=True)}, step=run.step)
    save_state(run)
    logger.close()
    return finish(run)


def finish(run: Run) -> dict[str, Any]:
    """Save the final adapter and write summary.json."""
    unit = UnitDir(Path(run.cfg.out_dir))
    save_adapter(run.policy, run.adapter, unit.adapter)
    first, last = run.val_history[0], run.val_history[-1]
    summary = {
        "method": run.cfg.method, "objectives": run.names, "adapter": run.adapter,
        "policy": run.cfg.policy, "seed": run.cfg.seed, "steps": run.step,
        "data_consumed": run.data_consumed, "seconds": round(run.seconds, 3),
        "seconds_per_step": round(run.seconds / max(run.step, 1), 4),
        "converged": run.converged, "weights": run.weights(),
        "reward_before": {n: first[n] for n in run.names}, "val_mean_before": first["mean"],
        "reward_after": {n: last[n] for n in run.names}, "val_mean_after": last["mean"],
        "adapter_dir": str(unit.adapter),
    }
    atomic_write_json(unit.summary, summary)
    return summary


# ----------------------------------------------------------------------------- seeds


def _mean_std(values: list[float]) -> dict[str, float]:
    m, s = mean_std(values)
    return {"mean": m, "std": s}


def train_seeds(cfg: SCSTConfig, seeds: list[int], resume: bool = False) -> dict[str, Any]:
    """Train one run per seed into `out_dir/seed_<s>/`; write `seeds_summary.json` (mean ± std,
    sample std over seeds). With `resume`, finished seeds are reused and interrupted ones resume."""
    require(len(seeds) > 0, "seeds is empty; pass e.g. --seeds 0,1,2")
    runs = []
    for s in seeds:
        seed_unit = UnitDir(Path(cfg.out_dir)).seed(s)
        sub = dataclasses.replace(cfg, seed=s, out_dir=str(seed_unit.root))
        done = seed_unit.summary
        if resume and done.is_file():
            runs.append(json.loads(done.read_text(encoding="utf-8")))
        else:
            runs.append(train_scst(sub, resume=resume and has_checkpoint(sub.out_dir)))
    names = runs[0]["objectives"]
    agg = _mean_std

    summary = {
        "seeds": list(seeds), "method": cfg.method, "objectives": names,
        "reward_before": {n: agg([r["reward_before"][n] for r in runs]) for n in names},
        "reward_after": {n: agg([r["reward_after"][n] for r in runs]) for n in names},
        "steps": agg([r["steps"] for r in runs]),
        "data_consumed": agg([r["data_consumed"] for r in runs]),
        "seconds": agg([r["seconds"] for r in runs]),
        "converged": [r["converged"] for r in runs], "runs": runs,
    }
    atomic_write_json(UnitDir(Path(cfg.out_dir)).seeds_summary, summary)
    return summary
