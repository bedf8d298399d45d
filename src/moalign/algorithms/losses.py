"""Pure tensor maths for SCST (EMORL/DMORL §5.1) and MOLMA (§3.2-§3.3, §4): no model code here.

Conventions
-----------
* Shapes are written as comments: ``B`` batch, ``T`` response tokens, ``V`` vocabulary, ``K``
  objectives, ``P*n`` = P prompts with n samples each.
* ``mask`` is 1 on the response tokens that count (up to and including EOS) and 0 on padding.
  Masks may be bool, int or float; they are converted to the data dtype. Right padding (valid
  tokens first) is assumed by :func:`gae`; the other functions accept any mask.
* Rewards, advantages and returns are constants for the policy: functions that build them
  (`kl_penalized_rewards`, `gae`, `whiten`) detach their inputs, and the losses detach the
  advantages/returns they are given.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

WHITEN_EPS = 1e-8
"""Added to the standard deviation when whitening, as in (x - mean) / (std + 1e-8)."""

ZERO_STD = 1e-6
"""A column of `logit_whiten` whose std is below this is treated as constant (output zeros)."""


def _fmask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Mask as the floating dtype/device of `like`."""
    return mask.to(
        device=like.device, dtype=like.dtype if like.is_floating_point() else torch.float
    )


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over the valid (b, t) positions; trailing dims of `x` (e.g. K) are kept.

    x: (B, T) or (B, T, K); mask: (B, T). Returns a scalar or (K,). An all-zero mask gives 0.
    """
    m = _fmask(mask, x)  # (B, T)
    if x.dim() == m.dim() + 1:
        m = m.unsqueeze(-1)  # (B, T, 1)
    total = (x * m).sum(dim=(0, 1))
    return total / m.sum(dim=(0, 1)).clamp_min(1.0)


# --------------------------------------------------------------------------------------------
# SCST (EMORL §5.1); token log-probabilities are `moalign.rollout.token_logprobs`
# --------------------------------------------------------------------------------------------


def transform_reward(
    r: torch.Tensor, kind: Literal["identity", "log"] = "identity"
) -> torch.Tensor:
    """Reward transform for SCST experts (not in EMORL §5.1; ``log`` is the authors' code's).

    ``identity`` returns `r`; ``log`` returns log(clip(r, 1e-4, 0.9999)), the "logsum" scoring of
    the authors' DynaOpt/EMORL code (scores in [0, 1] become log-scores in [-9.2, 0]).
    r: any shape. Returns the same shape.
    """
    if kind == "identity":
        return r
    if kind == "log":
        return torch.log(r.clamp(1e-4, 0.9999))
    raise ValueError(f"unknown reward transform {kind!r}; valid: 'identity', 'log'")


def scst_advantages(rewards: torch.Tensor, n: int) -> torch.Tensor:
    """Self-critical advantages (EMORL §5.1, SCST with the sample-mean baseline).

    The n samples of one prompt are contiguous: rewards[p*n:(p+1)*n] belong to prompt p.
    baseline_p = mean of those n rewards; advantage = reward - baseline_p (zero mean per prompt).
    rewards: (P*n,). Returns (P*n,).
    """
    if n < 1 or rewards.dim() != 1 or rewards.numel() % n != 0:
        raise ValueError(
            f"rewards must be 1-D with a multiple of n={n} entries, "
            f"got shape {tuple(rewards.shape)}"
        )
    grouped = rewards.reshape(-1, n)  # (P, n)
    return (grouped - grouped.mean(dim=1, keepdim=True)).reshape(-1)  # (P*n,)


def per_sample_kl(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample sequence KL estimate Σ_t mask·(log π(y_t) − log π0(y_t)) (cf. MOLMA Eq. 3.3).

    This is the single-sample (k1) Monte-Carlo estimate of KL(π || π0) for y ~ π. It keeps the
    graph of `logp`; `ref_logp` is detached (the reference is frozen).
    logp, ref_logp, mask: (B, T). Returns (B,).
    """
    m = _fmask(mask, logp)  # (B, T)
    return ((logp - ref_logp.detach()) * m).sum(dim=1)  # (B,)


def scst_loss(
    logprobs: torch.Tensor,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    kl_per_sample: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> torch.Tensor:
    """SCST policy-gradient loss with an optional per-sample KL penalty (EMORL §5.1).

    loss = −mean_b(A_b · S_b) + kl_coef · KL_term,  S_b = Σ_t mask_bt · log π(y_bt)

    KL term. With y ~ π, ∇ KL(π||π0) = E[(log π(y) − log π0(y)) · ∇ log π(y)]: the score-function
    (REINFORCE) gradient weighted by each sample's own KL. We therefore use the surrogate
        KL_term = mean_b( kl_b + sg(kl_b) · (S_b − sg(S_b)) )
    (sg = stop-gradient): its value equals mean_b kl_b (so it logs as the KL) and its gradient is
    mean_b kl_b · ∇S_b, i.e. each sample is pushed down in proportion to its own KL. This acts per
    sample even when the advantages have zero mean. Differentiating kl_b directly (pathwise) is
    not used: on-policy its expected gradient is E[∇ log π] = 0.
    Not repeated: the authors' code adds a *batch-scalar* KL inside the advantage product,
    mean_b(A_b · (S_b + c·KL)); since SCST advantages sum to zero, mean_b(A_b)·c·KL = 0 and the
    penalty has no effect at all.

    logprobs, mask: (B, T); advantages: (B,) (detached); kl_per_sample: (B,) or None (e.g. from
    :func:`per_sample_kl`; only its value is used). Returns a scalar.
    """
    m = _fmask(mask, logprobs)  # (B, T)
    seq_logp = (logprobs * m).sum(dim=1)  # (B,)
    adv = advantages.detach().to(seq_logp)  # (B,)
    loss = -(adv * seq_logp).mean()
    if kl_per_sample is not None and kl_coef != 0.0:
        kl = kl_per_sample.detach().to(seq_logp)  # (B,)
        surrogate = kl + kl * (seq_logp - seq_logp.detach())  # (B,) value kl, grad kl·∇S
        loss = loss + kl_coef * surrogate.mean()
    return loss


def combine_rewards(R: torch.Tensor, weights: torch.Tensor | list[float]) -> torch.Tensor:
    """Weighted sum of the objectives, R_total = Σ_k λ_k R_k (EMORL Eq. 1).

    R: (B, K); weights: (K,). Returns (B,).
    """
    w = torch.as_tensor(weights, dtype=R.dtype, device=R.device)  # (K,)
    if w.shape != (R.shape[-1],):
        raise ValueError(f"weights has shape {tuple(w.shape)}, expected ({R.shape[-1]},)")
    return R @ w  # (B,)


# --------------------------------------------------------------------------------------------
# MOLMA rewards (§3.3.1)
# --------------------------------------------------------------------------------------------


def logit_whiten(r: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """r̂ = WHITEN(LOGIT(clip(r, ε, 1−ε))) per objective within the batch (MOLMA Eq. 3.4).

    LOGIT(p) = log(p / (1 − p)); the clip keeps scores of exactly 0 or 1 finite (|logit| ≤ 9.2
    for ε = 1e-4). WHITEN(x) = (x − mean) / (std + 1e-8) per column, std = population std
    (``unbiased=False``). Columns that are constant within the batch (std < 1e-6, which includes
    batch size 1) carry no ranking information: their output is exactly 0 (x − mean without the
    division), never NaN and never amplified rounding noise.
    r: (B, K) (or (B,), treated as one column). Returns the same shape.
    """
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    x = torch.logit(r.clamp(eps, 1.0 - eps))  # (B, K)
    mean = x.mean(dim=0, keepdim=True)  # (1, K)
    std = x.std(dim=0, unbiased=False, keepdim=True)  # (1, K)
    white = (x - mean) / (std + WHITEN_EPS)  # (B, K)
    return torch.where(std < ZERO_STD, torch.zeros_like(white), white)


def kl_penalized_rewards(
    scores: torch.Tensor,
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Per-token vector reward r̄_k (MOLMA Eq. 3.3, per-token KL as in Ziegler et al./[3]).

    reward[b, t, k] = −β·(log π(y_bt) − log π0(y_bt)) on every valid token, plus scores[b, k] (the
    adapted score r̂_k from :func:`logit_whiten`) on the last valid token of row b. The KL part is
    the same for every objective. Rows with no valid token get all zeros. Detached.
    scores: (B, K); logp, ref_logp, mask: (B, T). Returns (B, T, K).
    """
    m = _fmask(mask, logp).detach()  # (B, T)
    B, T = m.shape
    kl_tok = -beta * (logp.detach() - ref_logp.detach()) * m  # (B, T)
    positions = torch.arange(1, T + 1, device=m.device, dtype=m.dtype)  # (T,)
    last = (m * positions).argmax(dim=1)  # (B,) index of the last valid token
    has_tokens = m.sum(dim=1) > 0  # (B,)
    end = F.one_hot(last, T).to(m.dtype) * has_tokens.unsqueeze(1).to(m.dtype)  # (B, T)
    s = scores.detach().to(m.dtype)  # (B, K)
    return kl_tok.unsqueeze(-1) + end.unsqueeze(-1) * s.unsqueeze(1)  # (B, T, K)


# --------------------------------------------------------------------------------------------
# GAE, whitening, APA and value losses (MOLMA §3.3.2-§3.3.4)
# --------------------------------------------------------------------------------------------


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation per objective (Schulman et al. 2016; MOLMA §3.3.2).

    δ_t = r_t + γ·V_{t+1} − V_t,  Â_t = δ_t + γλ·Â_{t+1}, with V and Â after the last valid
    token equal to 0 (the episode ends at EOS). Masks are right-padded, one length per row.
    Returns (advantages, returns = advantages + values); both are 0 on padding and detached.
    rewards, values: (B, T, K); mask: (B, T). Returns ((B, T, K), (B, T, K)).
    """
    r = rewards.detach()
    v = values.detach().to(r)
    m = _fmask(mask, r).unsqueeze(-1)  # (B, T, 1)
    T = r.shape[1]
    adv = torch.zeros_like(r)  # (B, T, K)
    next_adv = torch.zeros_like(r[:, 0])  # (B, K)
    next_value = torch.zeros_like(r[:, 0])  # (B, K)
    for t in reversed(range(T)):
        mt = m[:, t]  # (B, 1)
        delta = r[:, t] + gamma * next_value - v[:, t]  # (B, K)
        a_t = (delta + gamma * lam * next_adv) * mt  # (B, K)
        adv[:, t] = a_t
        next_adv = a_t
        next_value = v[:, t] * mt
    returns = (adv + v) * m
    return adv, returns


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Masked whitening of advantages (as TRL/trlx `whiten`; MOLMA §3.3.2 leaves this open).

    Statistics over the valid (b, t) positions, separately for each trailing objective k:
    (x − mean)/(std + 1e-8) with the population std. With ``shift_mean=False`` the mean is added
    back (only the scale changes). Padding positions are 0. Detached.
    x: (B, T) or (B, T, K); mask: (B, T). Returns the shape of x.
    """
    x = x.detach()
    m = _fmask(mask, x)  # (B, T)
    mk = m.unsqueeze(-1) if x.dim() == m.dim() + 1 else m  # (B, T[, 1])
    mean = masked_mean(x, m)  # () or (K,)
    var = masked_mean((x - mean) ** 2, m)  # () or (K,)
    out = (x - mean) / (var.sqrt() + WHITEN_EPS)
    if not shift_mean:
        out = out + mean
    return out * mk


def apa_losses(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    lam: float,
) -> torch.Tensor:
    """APA policy loss for each objective (MOLMA Eq. 3.5; Zhu et al. 2023, APA).

    L_k = mean over valid tokens of (log π_θ(a|s) − log π0(a|s) − Â_k(s,a)/λ)².
    λ = 0.95 in MOLMA; APA's code writes the same thing as adv_coeff_sq·Â with adv_coeff_sq =
    1/λ (10 for HH, i.e. λ = 0.1). Advantages are detached; gradients flow through `logp` only.
    logp, ref_logp, mask: (B, T); advantages: (B, T, K). Returns (K,).
    """
    if lam <= 0:
        raise ValueError(f"APA lambda must be > 0, got {lam}")
    log_ratio = (logp - ref_logp.detach()).unsqueeze(-1)  # (B, T, 1)
    err = log_ratio - advantages.detach().to(logp) / lam  # (B, T, K)
    return masked_mean(err**2, mask)  # (K,)


def value_losses(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float | None = None,
    coef: float = 0.5,
) -> torch.Tensor:
    """Critic loss per objective (MOLMA Eq. 3.6).

    Eq. 3.6 is (V_k − Â_k − V_k,old)² = (V_k − R_k)² with returns R_k = Â_k + V_k,old (the
    un-whitened GAE advantages from :func:`gae`). We return coef · masked mean of that, coef = 0.5
    by default (the usual ½·MSE, gradient = V − R). With ``clip`` set, PPO-style value clipping:
    V_clip = V_old + clamp(V − V_old, −clip, clip) and the per-token loss is
    max((V − R)², (V_clip − R)²).
    values, old_values, returns: (B, T, K); mask: (B, T). Returns (K,).
    """
    ret = returns.detach().to(values)
    loss_tok = (values - ret) ** 2  # (B, T, K)
    if clip is not None:
        old = old_values.detach().to(values)
        v_clip = old + (values - old).clamp(-clip, clip)  # (B, T, K)
        loss_tok = torch.maximum(loss_tok, (v_clip - ret) ** 2)
    return coef * masked_mean(loss_tok, mask)  # (K,)


# --------------------------------------------------------------------------------------------
# Reward models (MOLMA §3.2) and single-objective baselines (MOLMA §4)
# --------------------------------------------------------------------------------------------


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Pairwise ranking loss −mean log σ(r(x, y_c) − r(x, y_r)) (MOLMA Eq. 3.2, §3.2).

    Uses logsigmoid for stability. r_chosen, r_rejected: (B,). Returns a scalar.
    """
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def pairwise_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """Share of pairs ranked correctly, r_chosen > r_rejected (MOLMA §3.2, Table 2).

    A tie counts as half a correct pair (as in `metrics.win_rates`). An empty batch gives
    NaN. r_chosen, r_rejected: (B,). Returns a float in [0, 1].
    """
    diff = (r_chosen - r_rejected).detach()  # (B,)
    if diff.numel() == 0:
        return float("nan")
    score = (diff > 0).float() + 0.5 * (diff == 0).float()  # (B,)
    return score.mean().item()


def so_weighted(R: torch.Tensor) -> torch.Tensor:
    """SO-weighted scalar reward: Σ_k (1/K)·r̄_k, the mean of the K adapted rewards (MOLMA Eq. 4.1).

    `R` holds the adapted scores (:func:`logit_whiten` output); the per-token KL part of r̄ is the
    same for every k, so it is added afterwards by :func:`kl_penalized_rewards` with K = 1.
    R: (B, K). Returns (B,).
    """
    return R.mean(dim=-1)


def so_piecewise(r_help: torch.Tensor, r_safe: torch.Tensor, delta: float) -> torch.Tensor:
    """SO-piecewise reward r_p = r_safe if r_safe < δ else r_help (MOLMA Eq. 4.2).

    Applied to the raw scores; Eq. 4.2 then adapts r_p with WHITEN(LOGIT(·)), i.e.
    ``logit_whiten(so_piecewise(...).unsqueeze(-1))``.
    r_help, r_safe: (B,). Returns (B,).
    """
    return torch.where(r_safe < delta, r_safe, r_help)
