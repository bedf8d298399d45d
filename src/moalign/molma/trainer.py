"""MOLMA joint training (MOLMA §3.3, Algorithm 1) and the SO baselines (MOLMA §4.3, Eqs. 4.1-4.2).

One readable loop, `train_molma`; the maths is in `algorithms.losses` and `algorithms.aligned_mtl`:

    repeat `iterations` times:
        prompts  <- `memory` prompts from the prompt mix (default 60/40 help/safety)
        rollout  <- one sampled response per prompt (eval mode, policy adapter)
        R        <- score_matrix(scorers, prompts, responses)                  (B, K) raw in (0,1)
        r̂        <- logit_whiten(R)                                              MOLMA Eq. 3.4
                    (SO baselines: one column; so_weighted Eq. 4.1, so_piecewise Eq. 4.2)
        r̄        <- r̂ on the last token − β(log π − log π0) on every token       Eq. 3.3
        V_old    <- critic values (B, T, K); Â, returns <- gae(r̄, V_old), Â whitened
        for each minibatch of `minibatch` rollouts (one optimiser step each):
            L_k  <- L_APA,k (Eq. 3.5) + L_V,k (Eq. 3.6)                          Eq. 3.7
            g_k  <- ∇_φ L_k w.r.t. the policy LoRA φ (K backward passes, retain_graph)
            G = [g_1 … g_K]  ->  Aligned-MTL / weighted sum / PCGrad  ->  φ.grad
            critic ψ.grad <- ∇_ψ Σ_k L_V,k;  clip 1.0 (each block), AdamW step
        log, checkpoint every `save_every` iterations

Models. One base model holds everything: the reference policy π0 is the base with adapters
disabled; the policy π is LoRA adapter `policy`; the critic is LoRA adapter `value` on the same
base plus a linear value head with one output per objective (K outputs, `critic: lora`). At
initialisation the value adapter is a no-op (LoRA B = 0), so the critic trunk *is* the reference
model, as MOLMA §3.3.3 asks, but without a second copy of the weights: this is the cheapest
correct separate critic (one extra LoRA, an extra forward pass per minibatch, no extra base
weights). `critic: head` is cheaper still (frozen reference trunk, only the value head learns;
its states are computed once per rollout) at the price of a weaker critic. `finetune: full`
(MOLMA §4.1 fine-tunes the whole model) trains every policy weight instead; a second, frozen copy
of the model is then π0 and the critic's trunk, carrying the value LoRA and heads.

Gradients. Policy φ and critic ψ are separate parameters, so ∇_φ L_k = ∇_φ L_APA,k and
∇_ψ L_k = ∇_ψ L_V,k. Algorithm 1 aligns g_k = ∇_φ L_k: the combiner sees the policy block only
(stacking the critic into G would let the K value heads, which are separate parameters and
naturally orthogonal, dominate GᵀG and hide the policy's conflicts). The K critic heads each
regress their own returns and get the plain sum of their gradients. Logged cosines and condition
numbers are those of the policy gradients.

SO baselines use exactly this loop with K = 1 (the combiner is then the identity): `so` on one
named objective, `so_weighted` = mean of the K adapted rewards (Eq. 4.1), `so_piecewise`
= r_safe if r_safe < δ else r_help, then LOGIT+WHITEN (Eq. 4.2). Every objective's raw reward is
still scored and logged.

Resuming (`resume=True`) restores adapters, value head, optimiser and RNG streams from
the newest complete `out_dir/checkpoint-<step>`; prompts and minibatch orders are functions of
(seed, iteration), so a resumed run equals an uninterrupted one with the same seed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from moalign.algorithms.aligned_mtl import (
    assign_flat_grad,
    combine_gradients,
    flatten_grads,
    gradient_conflict_stats,
)
from moalign.algorithms.losses import (
    apa_losses,
    gae,
    kl_penalized_rewards,
    logit_whiten,
    so_piecewise,
    so_weighted,
    value_losses,
    whiten,
)
from moalign.core.checkpoint import load_checkpoint, save_checkpoint, seed_everything, start_unit
from moalign.core.config import require
from moalign.core.errors import ObjectiveError
from moalign.core.io import atomic_dir, atomic_write_json
from moalign.core.tracking import drop_metrics_after
from moalign.data import mix_prompts
from moalign.models import (
    Policy,
    attach_lora,
    base_model,
    disable_dropout,
    load_policy,
    peft_model,
    save_adapter,
)
from moalign.molma.config import MolmaConfig, prompt_splits
from moalign.rewards.reward_models import objective_scorers
from moalign.rewards.scorers import Scorer, score_matrix
from moalign.rollout import (
    Rollout,
    eval_mode,
    left_pad_positions,
    response_logits,
    sample,
    token_logprobs,
)
from moalign.runs.layout import UnitDir
from moalign.sampling import Sampling

POLICY, VALUE = "policy", "value"


# ----------------------------------------------------------------------------- prompts


def iteration_prompts(run: Run, iteration: int) -> list[str]:
    """The memory's prompts at `iteration`: a function of (seed, iteration) only (resumable)."""
    sources = list(zip(run.train_sources, run.cfg.proportions, strict=True))
    return mix_prompts(sources, run.cfg.memory, seed=run.cfg.seed * 1_000_003 + iteration)


# ----------------------------------------------------------------------------- rewards


def signal_names(cfg: MolmaConfig, names: list[str]) -> list[str]:
    """Names of the training signals: the K objectives (molma) or one scalar (SO modes)."""
    if cfg.mode == "molma":
        return list(names)
    if cfg.mode == "so":
        return [cfg.so_objective or names[0]]
    return [cfg.mode]


def _column(names: list[str], name: str) -> int:
    require(name in names, f"objective {name!r} is not among the objectives {names}")
    return names.index(name)


def training_rewards(cfg: MolmaConfig, raw: torch.Tensor, names: list[str]) -> torch.Tensor:
    """Adapted rewards r̂ (B, K') from raw scores (B, K) in [0, 1] (MOLMA Eq. 3.4, 4.1, 4.2)."""
    eps = cfg.logit_eps
    if cfg.mode == "molma":
        return logit_whiten(raw, eps)  # (B, K)
    if cfg.mode == "so":
        return logit_whiten(raw[:, [_column(names, cfg.so_objective or names[0])]], eps)
    if cfg.mode == "so_weighted":
        return so_weighted(logit_whiten(raw, eps)).unsqueeze(-1)  # (B, 1)
    r_help = raw[:, _column(names, cfg.help_objective)]
    r_safe = raw[:, _column(names, cfg.safe_objective)]
    return logit_whiten(so_piecewise(r_help, r_safe, cfg.delta).unsqueeze(-1), eps)  # (B, 1)


# ----------------------------------------------------------------------------- setup


@dataclass
class Run:
    """Everything the loop works on; a checkpoint restores adapters, head, optimiser, counters."""

    cfg: MolmaConfig
    policy: Policy
    scorers: Sequence[Scorer]
    names: list[str]  # objectives scored (K)
    signals: list[str]  # training signals (K for molma, 1 for SO modes)
    value_head: nn.Linear
    policy_params: list[nn.Parameter]  # policy LoRA (φ), fixed order
    critic_params: list[nn.Parameter]  # critic LoRA + value head (ψ)
    optimizer: torch.optim.Optimizer
    train_sources: list[list[str]]
    iteration: int = 0
    step: int = 0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)  # per-iteration raw means
    reference: PeftModel | None = None  # finetune: full: the frozen π0 copy with the value LoRA

    @property
    def model(self) -> PeftModel:
        """The base model with the `policy` (and `value`) LoRA adapters."""
        return peft_model(self.policy)

    @property
    def frozen(self) -> PeftModel:
        """The model whose disabled adapters are π0 and whose `value` adapter is the critic: the
        policy's own base (`finetune: lora`) or the separate frozen copy (`finetune: full`)."""
        return self.reference if self.reference is not None else self.model


def _adapter_params(model: nn.Module, adapter: str) -> list[nn.Parameter]:
    return [p for n, p in model.named_parameters() if "lora_" in n and f".{adapter}." in n]


def _activate(run: Run, adapter: str) -> None:
    """Make `adapter` the active one; PEFT's set_adapter freezes the others, so every trainable
    parameter gets requires_grad back (an inactive adapter simply receives no gradient)."""
    if run.reference is None:  # full fine-tuning: the critic copy has one adapter, no switch
        run.model.set_adapter(adapter)
    for p in run.policy_params + run.critic_params:
        p.requires_grad_(True)


def frozen_copy(cfg: MolmaConfig) -> PeftModel:
    """`finetune: full`: a second, frozen copy of the model (π0, and the critic's trunk as
    MOLMA §3.3.3 initialises it) holding the `value` LoRA (used by `critic: lora`)."""
    ref = load_policy(cfg.policy, device=cfg.device)
    disable_dropout(ref.model)
    attach_lora(ref, VALUE, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)
    return peft_model(ref)  # the base weights are frozen by PEFT, only `value` can train


def build_run(cfg: MolmaConfig) -> Run:
    """Seed; load scorers, prompts and the base model; attach policy + value adapters and the
    K-output value head; make the optimiser (AdamW over all of them)."""
    seed_everything(cfg.seed)
    scorers = objective_scorers(cfg.objectives)
    bad = [s.name for s in scorers if not s.higher_is_better]
    require(not bad, f"objectives {bad} are lower-is-better; MOLMA's LOGIT (Eq. 3.4) needs "
            "scores in [0, 1] where higher is better (map them first, e.g. 1 - score)")
    names = [s.name for s in scorers]
    signals = signal_names(cfg, names)
    training_rewards(cfg, torch.full((2, len(names)), 0.5), names)  # named objectives exist
    train_sources, _ = prompt_splits(cfg)
    policy = load_policy(cfg.policy, device=cfg.device)
    require(not policy.is_encoder_decoder, "MOLMA trains causal LMs; got an encoder-decoder")
    disable_dropout(policy.model)
    reference = frozen_copy(cfg) if cfg.finetune == "full" else None
    if reference is None:
        attach_lora(policy, POLICY, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)
        if cfg.critic == "lora":
            attach_lora(policy, VALUE, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)
        phi = _adapter_params(peft_model(policy), POLICY)
    else:
        phi = list(policy.model.parameters())  # every policy weight (MOLMA §4.1)
    holder = reference if reference is not None else peft_model(policy)
    value_head = nn.Linear(base_model(holder).config.hidden_size, len(signals)).to(policy.device)
    psi = (_adapter_params(holder, VALUE) if cfg.critic == "lora" else []) + \
        list(value_head.parameters())
    optimizer = torch.optim.AdamW(phi + psi, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]),
                                  eps=cfg.eps, weight_decay=cfg.weight_decay)
    run = Run(cfg, policy, scorers, names, signals, value_head, phi, psi, optimizer,
              train_sources, reference=reference)
    _activate(run, POLICY)
    return run


# ----------------------------------------------------------------------------- forward passes


def logprobs(run: Run, r: Rollout, reference: bool = False) -> torch.Tensor:
    """log π(y_t) (N, Tr) of the response tokens under the policy adapter, or under the frozen
    reference π0 (adapters disabled, no gradient). Only the response positions go through the
    LM head (`logits_to_keep`), which saves most of its cost for long prompts."""
    keep = r.response_ids.shape[1] + 1
    if reference:
        with torch.no_grad(), run.frozen.disable_adapter():
            logits, _ = response_logits(run.frozen, r, False, logits_to_keep=keep)
    else:
        logits, _ = response_logits(run.policy.model, r, False, logits_to_keep=keep)
    return token_logprobs(logits, r.response_ids, r.response_mask, run.cfg.temperature)


# ----------------------------------------------------------------------------- critic


def backbone_states(model: PeftModel, r: Rollout) -> torch.Tensor:
    """Final hidden states (N, Tr, H) at the positions that predict the response tokens: the
    state s_t before response token t (the critic's input), without the LM head."""
    base = base_model(model)
    body = getattr(base, base.base_model_prefix)
    ids = torch.cat([r.query_ids, r.response_ids], dim=1)  # (N, Tq+Tr)
    attn = torch.cat([r.query_mask, r.response_mask], dim=1)
    hidden = body(input_ids=ids, attention_mask=attn,
                  position_ids=left_pad_positions(attn)).last_hidden_state
    tr = r.response_ids.shape[1]
    return hidden[:, -tr - 1:-1]


def critic_states(run: Run, r: Rollout) -> torch.Tensor:
    """The critic trunk's states (N, Tr, H): value adapter (`critic: lora`) or the frozen
    reference model (`critic: head`, no gradient)."""
    model = run.frozen
    if run.cfg.critic == "head":
        with torch.no_grad(), model.disable_adapter():
            return backbone_states(model, r)
    _activate(run, VALUE)
    try:
        return backbone_states(model, r)
    finally:
        _activate(run, POLICY)


# ----------------------------------------------------------------------------- experience


@dataclass
class Experience:
    """One iteration's memory: rollouts and everything the minibatch losses need."""

    rollout: Rollout
    raw: torch.Tensor  # (B, K) raw scores
    ref_logp: torch.Tensor  # (B, T)
    old_values: torch.Tensor  # (B, T, K')
    advantages: torch.Tensor  # (B, T, K') whitened
    returns: torch.Tensor  # (B, T, K')
    kl: float  # mean per-sequence Σ_t (log π − log π0) at rollout time
    states: torch.Tensor | None = None  # (B, T, H) frozen critic states (`critic: head`)


@torch.no_grad()
def collect(run: Run, iteration: int) -> Experience:
    """Roll out the memory, score it, and build the per-objective advantages (Eq. 3.3, 3.4)."""
    cfg, policy = run.cfg, run.policy
    sampling = Sampling(cfg.max_new_tokens, do_sample=True, temperature=cfg.temperature)
    r = sample(policy, iteration_prompts(run, iteration), sampling, n=1, system=cfg.system,
               max_prompt_tokens=cfg.max_prompt_tokens, logprobs_at=cfg.temperature)
    raw = score_matrix(run.scorers, r.prompts, r.responses).float()  # (B, K)
    if raw.numel() and (raw.min() < 0 or raw.max() > 1):
        raise ObjectiveError(f"objectives {run.names} returned scores outside [0, 1] "
                             f"({raw.min():.3g}..{raw.max():.3g}); LOGIT (Eq. 3.4) needs [0, 1]")
    scores = training_rewards(cfg, raw, run.names).to(policy.device)  # (B, K')
    with eval_mode(policy.model):  # log π: the sampling pass's own logits when it kept them
        logp = r.logprobs if r.logprobs is not None else logprobs(run, r)  # (B, T)
        ref = logprobs(run, r, reference=True)
        states = critic_states(run, r)  # (B, T, H)
        old_values = run.value_head(states)  # (B, T, K')
    mask = r.response_mask
    rewards = kl_penalized_rewards(scores, logp, ref, mask, cfg.beta)  # (B, T, K')
    adv, returns = gae(rewards, old_values, mask, cfg.gamma, cfg.gae_lambda)
    kl = ((logp - ref) * mask).sum(1).mean().item()
    return Experience(r, raw, ref, old_values, whiten(adv, mask), returns, kl,
                      states if cfg.critic == "head" else None)


# ----------------------------------------------------------------------------- one step


def minibatch_losses(run: Run, exp: Experience, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """L_k = L_APA,k (Eq. 3.5) + value_coef·L_V,k (Eq. 3.6) for one minibatch; all (K',)."""
    cfg = run.cfg
    mb = exp.rollout.select(idx)
    logp = logprobs(run, mb)  # (n, T) with gradients
    states = exp.states[idx] if exp.states is not None else critic_states(run, mb)
    values = run.value_head(states)  # (n, T, K')
    ref, mask = exp.ref_logp[idx], mb.response_mask
    apa = apa_losses(logp, ref, exp.advantages[idx], mask, cfg.apa_lambda)  # (K',)
    vl = value_losses(values, exp.old_values[idx], exp.returns[idx], mask, cfg.value_clip,
                      coef=1.0)  # (K',) Eq. 3.6
    kl = ((logp.detach() - ref) * mask).sum(1).mean()
    return {"total": apa + cfg.value_coef * vl, "apa": apa, "value": vl, "kl": kl}


def task_gradients(losses: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    """G = [g_1 … g_K] (P, K), g_k = ∇ L_k w.r.t. `params` (MOLMA Algorithm 1, lines 4-7): one
    backward pass per objective, graph retained; only `params` receive gradients."""
    cols = []
    for k in range(losses.shape[0]):
        for p in params:
            p.grad = None
        torch.autograd.backward(losses[k], inputs=params, retain_graph=True)
        cols.append(flatten_grads(params))
    return torch.stack(cols, dim=1)  # (P, K)


def combine(run: Run, G: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """The update direction from G with the configured combiner, and conflict statistics."""
    cfg = run.cfg
    weights = cfg.weights if cfg.mode == "molma" else None
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + run.step)  # PCGrad order
    update, info = combine_gradients(cfg.combiner, G, weights, generator=gen)
    before = gradient_conflict_stats(G)
    if cfg.combiner == "aligned_mtl":
        after = info["cond_after"]
    elif cfg.combiner == "pcgrad":
        after = gradient_conflict_stats(info["projected"])["condition_number"]
    else:
        after = before["condition_number"]
    stats = {"cond_before": before["condition_number"], "cond_after": after,
             "min_cosine": before["min_cosine"]}
    K = G.shape[1]
    for i in range(K):
        for j in range(i + 1, K):
            key = "grad_cosine" if K == 2 else f"grad_cosine/{run.signals[i]}/{run.signals[j]}"
            stats[key] = float(before["cosine"][i, j])
    return update, stats


def train_step(run: Run, exp: Experience, idx: torch.Tensor) -> dict[str, float]:
    """One optimiser step on a minibatch (MOLMA Algorithm 1, lines 3-14).

    Policy φ: G = [∇_φ L_1 … ∇_φ L_K] -> combiner (Aligned-MTL by default) -> .grad. The critic ψ
    is a separate network (∇_φ L_V,k = 0, ∇_ψ L_APA,k = 0): each of its K heads regresses its own
    return, so it gets the plain sum ∇_ψ Σ_k L_V,k. Each block is clipped to `grad_clip` on its
    own (the critic's larger gradients do not shrink the policy update); one AdamW step.
    """
    cfg = run.cfg
    run.policy.model.train()  # LoRA dropout on for the gradient pass
    losses = minibatch_losses(run, exp, idx)
    G = task_gradients(losses["total"], run.policy_params)  # (P_φ, K')
    update, stats = combine(run, G)
    assign_flat_grad(run.policy_params, update)
    for p in run.critic_params:
        p.grad = None
    torch.autograd.backward(cfg.value_coef * losses["value"].sum(), inputs=run.critic_params)
    stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(run.policy_params, cfg.grad_clip).item()
    stats["critic_grad_norm"] = torch.nn.utils.clip_grad_norm_(run.critic_params,
                                                               cfg.grad_clip).item()
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.policy.model.eval()
    stats["kl"] = losses["kl"].item()
    for k, name in enumerate(run.signals):
        stats[f"apa/{name}"] = losses["apa"][k].item()
        stats[f"value/{name}"] = losses["value"][k].item()
    return stats


def minibatches(run: Run, n: int, iteration: int, epoch: int) -> list[torch.Tensor]:
    """Shuffled minibatch indices of the memory; a function of (seed, iteration, epoch)."""
    gen = torch.Generator().manual_seed((run.cfg.seed * 1_000_003 + iteration) * 101 + epoch)
    order = torch.randperm(n, generator=gen)
    return [order[i:i + run.cfg.minibatch] for i in range(0, n, run.cfg.minibatch)]


# ----------------------------------------------------------------------------- checkpoints


def checkpoint_parts(run: Run) -> tuple[Policy, list[str], dict[str, nn.Module]]:
    """What a checkpoint holds: the model holding the adapters, their names, other modules (the
    value head; with `finetune: full` the whole policy, its adapters live on the frozen copy)."""
    critic = [VALUE] if run.cfg.critic == "lora" else []
    if run.reference is None:
        return run.policy, [POLICY, *critic], {"value_head": run.value_head}
    holder = Policy(run.reference, run.policy.tokenizer, False, run.policy.name)
    return holder, critic, {"value_head": run.value_head, "policy": run.policy.model}


def save_state(run: Run) -> None:
    holder, adapters, modules = checkpoint_parts(run)
    extra = {"iteration": run.iteration, "seconds": run.seconds, "history": run.history}
    save_checkpoint(run.cfg.out_dir, holder, adapters, run.step, run.optimizer,
                    extra=extra, modules=modules, keep=run.cfg.keep_checkpoints)


def restore_state(run: Run) -> None:
    """Load the checkpoint into `run`; drop metrics logged after it (a killed run's tail)."""
    holder, adapters, modules = checkpoint_parts(run)
    state = load_checkpoint(run.cfg.out_dir, holder, adapters, run.optimizer, modules=modules)
    _activate(run, POLICY)
    run.step, extra = int(state["step"]), state["extra"]
    run.iteration, run.seconds = int(extra["iteration"]), float(extra["seconds"])
    run.history = list(extra["history"])
    drop_metrics_after(UnitDir(Path(run.cfg.out_dir)).metrics, run.step)


def finish(run: Run) -> dict[str, Any]:
    """Save the policy (LoRA adapter, or the full model with `finetune: full`), the critic
    (value adapter + head) and summary.json."""
    unit = UnitDir(Path(run.cfg.out_dir))
    holder, _, _ = checkpoint_parts(run)
    if run.reference is None:
        save_adapter(run.policy, POLICY, unit.adapter)
    else:
        with atomic_dir(unit.model) as tmp:
            run.policy.model.save_pretrained(str(tmp))
            run.policy.tokenizer.save_pretrained(tmp)
    if run.cfg.critic == "lora":
        save_adapter(holder, VALUE, unit.value_adapter)
    head = {k: t.detach().cpu().contiguous() for k, t in run.value_head.state_dict().items()}
    save_file(head, unit.value_head, metadata={"outputs": ",".join(run.signals)})
    first, last = first_last_means(run.history, run.names)
    summary = {
        "mode": run.cfg.mode, "combiner": run.cfg.combiner, "objectives": run.names,
        "signals": run.signals, "policy": run.cfg.policy, "seed": run.cfg.seed,
        "iterations": run.iteration, "steps": run.step, "seconds": round(run.seconds, 3),
        "reward_first": first, "reward_last": last,
        "adapter_dir": str(unit.adapter if run.reference is None else unit.model),
        "critic": run.cfg.critic, "finetune": run.cfg.finetune,
    }
    atomic_write_json(unit.summary, summary)
    return summary


def first_last_means(history: list[dict[str, float]], names: list[str],
                     window: int = 3) -> tuple[dict[str, float], dict[str, float]]:
    """Mean reward per objective over the first and the last iterations: up to `window` each,
    never overlapping (a short run of n iterations uses n // 2; one iteration is both)."""
    n = max(1, min(window, len(history) // 2))
    first, last = history[:n], history[-n:]
    return ({k: _mean([h[k] for h in first]) for k in names},
            {k: _mean([h[k] for h in last]) for k in names})


def _mean(xs: list[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")


# ----------------------------------------------------------------------------- the loop


def _iteration_stats(run: Run, exp: Experience) -> dict[str, float]:
    means = exp.raw.mean(dim=0).tolist()
    rec = {name: float(m) for name, m in zip(run.names, means, strict=True)}
    run.history.append({"iteration": run.iteration, **rec})
    lengths = exp.rollout.response_mask.sum(1).float().mean().item()
    return {"iteration": run.iteration, "kl_rollout": exp.kl, "response_tokens": lengths,
            **{f"reward/{k}": v for k, v in rec.items()}}


@contextmanager
def _progress(run: Run) -> Iterator[tqdm]:
    bar = tqdm(total=run.cfg.iterations, initial=run.iteration, disable=not run.cfg.progress,
               desc=f"{run.cfg.mode}", unit="iter", dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


def train_molma(cfg: MolmaConfig, resume: bool = False) -> dict[str, Any]:
    """Train MOLMA / an SO baseline into `cfg.out_dir`; return (and write) summary.json.

    Artifacts: config.yaml, metrics.jsonl (one record per optimiser step), adapter/ (policy
    LoRA), value_adapter/ + value_head.safetensors (critic), checkpoint-<step>/, summary.json.
    """
    cfg.validate()
    run = build_run(cfg)
    if resume:
        restore_state(run)
    logger = start_unit(cfg, cfg.out_dir, cfg.loggers, resume)  # fresh: old log, checkpoints go
    with _progress(run) as bar:
        while run.iteration < cfg.iterations:
            t0 = time.perf_counter()
            exp = collect(run, run.iteration)
            it_stats = _iteration_stats(run, exp)
            for epoch in range(cfg.epochs):
                for idx in minibatches(run, len(exp.rollout), run.iteration, epoch):
                    stats = train_step(run, exp, idx)
                    run.step += 1
                    logger.log({**it_stats, **stats, "epoch": epoch}, step=run.step)
            run.iteration += 1
            run.seconds += time.perf_counter() - t0
            bar.update(1)
            bar.set_postfix({k.split("/")[-1][:12]: f"{v:.3f}" for k, v in it_stats.items()
                             if k.startswith("reward/")} | {"kl": f"{exp.kl:.3f}"})
            if cfg.save_every and run.iteration % cfg.save_every == 0:
                save_state(run)
    if not (cfg.save_every and run.iteration % cfg.save_every == 0):
        save_state(run)
    logger.close()
    return finish(run)
