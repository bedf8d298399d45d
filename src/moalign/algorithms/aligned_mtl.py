"""Combining per-objective gradients: Aligned-MTL (MOLMA Algorithm 1), PCGrad, weighted sum.

All combiners take the task gradient matrix G (P, K) — one column g_k = ∇_φ L_k per objective,
P = number of trainable parameters — and return ``(update, info)``: the update direction (P,)
to write into ``.grad`` (the optimiser then *descends* along it) and a dict of statistics for
logging (floats, plus a few tensors named in each docstring).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypedDict

import torch

METHODS = ("aligned_mtl", "pcgrad", "weighted_sum")


class ConflictStats(TypedDict):
    """`gradient_conflict_stats`: how much the objectives' gradients conflict."""

    cosine: torch.Tensor  # (K, K) float64 pairwise cosine similarities
    min_cosine: float  # smallest off-diagonal cosine (1.0 for K = 1)
    condition_number: float  # σ_max / σ_min of G (NaN if G = 0)
    norms: list[float]  # ‖g_k‖


class CombineInfo(TypedDict, total=False):
    """The statistics a combiner returns with its update (each docstring names its keys)."""

    cosine: torch.Tensor
    min_cosine: float
    condition_number: float
    norms: list[float]
    aligned: torch.Tensor  # aligned_mtl: Ĝ (P, K)
    B: torch.Tensor  # aligned_mtl: (K, K) float64
    rank: int  # aligned_mtl: eigenpairs kept
    eigenvalues: list[float]  # aligned_mtl: of M = GᵀG
    cond_before: float  # aligned_mtl: cond(G)
    cond_after: float  # aligned_mtl: cond(Ĝ)
    projected: torch.Tensor  # pcgrad: (P, K)
    n_conflicts: int  # pcgrad: projections made


def _weights(
    weights: torch.Tensor | Sequence[float] | None, K: int, like: torch.Tensor
) -> torch.Tensor:
    """Task importances ω as a (K,) tensor like `like`; None means all ones."""
    if weights is None:
        return torch.ones(K, dtype=like.dtype, device=like.device)
    w = torch.as_tensor(weights, dtype=like.dtype, device=like.device)
    if w.shape != (K,):
        raise ValueError(f"weights has shape {tuple(w.shape)}, expected ({K},)")
    return w


def _check_matrix(G: torch.Tensor) -> None:
    if G.dim() != 2:
        raise ValueError(f"G must be (P, K) with one column per objective, got {tuple(G.shape)}")


EIG_EPS = torch.finfo(torch.float32).eps
"""Machine epsilon of the rank rule: float32's (1.19e-7), as in the Aligned-MTL reference code
(SamsungLabs/MTL, LibMTL: ``max(λ)·K·torch.finfo().eps`` with the default float32 dtype). The
gradients are float32, so eigenvalues below this relative level are rounding noise: keeping them
(float64's eps would) shrinks the whole update to σ_min ≈ 0 when two objectives agree."""


def _eig_tolerance(eigvals: torch.Tensor, K: int) -> float:
    """Eigenvalues ≤ max(λ)·K·eps(float32) count as zero (numerical rank rule, Algorithm 1)."""
    return float(eigvals.max().clamp_min(0.0)) * K * EIG_EPS


def _condition_number(M: torch.Tensor) -> float:
    """cond(G) = σ_max/σ_min over the nonzero singular values, from M = GᵀG (float64, (K, K))."""
    eig = torch.linalg.eigvalsh(M)  # (K,) ascending
    kept = eig[eig > _eig_tolerance(eig, M.shape[0])]
    if kept.numel() == 0:
        return float("nan")
    return float((kept.max() / kept.min()).sqrt())


def _gram(G: torch.Tensor) -> torch.Tensor:
    """M = GᵀG in float64. G: (P, K). Returns (K, K)."""
    Gd = G.detach().double()
    return Gd.T @ Gd


def _stats_from_gram(M: torch.Tensor) -> ConflictStats:
    """Cosines, min cosine, condition number and norms from M = GᵀG (K, K)."""
    norms = M.diagonal().clamp_min(0.0).sqrt()  # (K,)
    denom = torch.outer(norms, norms)  # (K, K)
    cosine = torch.where(denom > 0, M / denom.clamp_min(1e-300), torch.zeros_like(M))
    K = M.shape[0]
    off = cosine[~torch.eye(K, dtype=torch.bool, device=cosine.device)]
    return {
        "cosine": cosine,
        "min_cosine": float(off.min()) if off.numel() else 1.0,
        "condition_number": _condition_number(M),
        "norms": norms.tolist(),
    }


def gradient_conflict_stats(G: torch.Tensor) -> ConflictStats:
    """Conflict/dominance statistics of the task gradients (MOLMA §3.3.5, Aligned-MTL).

    Returns {"cosine": (K, K) float64 tensor of pairwise cosine similarities (0 where a gradient
    is zero), "min_cosine": smallest off-diagonal cosine (1.0 for K = 1), "condition_number":
    σ_max/σ_min of G over its nonzero singular values (NaN if G = 0), "norms": list of ‖g_k‖}.
    G: (P, K).
    """
    _check_matrix(G)
    return _stats_from_gram(_gram(G))


def aligned_mtl(
    G: torch.Tensor, weights: torch.Tensor | Sequence[float] | None = None
) -> tuple[torch.Tensor, CombineInfo]:
    """Aligned-MTL gradient alignment (MOLMA Algorithm 1, lines 7-13; Senushkin et al. 2023).

    M = GᵀG (float64); (λ, V) = eigh(M); eigenpairs with λ ≤ max(λ)·K·eps(float32) are dropped
    (`EIG_EPS`, the reference code's rule), so a rank-deficient G (two identical or nearly
    parallel gradients, a column that is a combination of others) keeps only its r retained pairs;
    Σ⁻¹ = diag(λ^{-1/2}); B = sqrt(λ_min)·V·Σ⁻¹·Vᵀ with λ_min the smallest *retained* eigenvalue;
    Ĝ = G·B; update = Ĝ·ω. Writing G = UΣVᵀ, Ĝ = σ_min·U_r·V_rᵀ: every nonzero singular value of
    Ĝ equals σ_min, the condition number becomes 1. If G = 0 the update is 0.

    G: (P, K); weights ω: (K,) or None (all ones). Returns (update (P,), info) with
    info["aligned"] = Ĝ (P, K), info["B"] (K, K float64), info["rank"], info["eigenvalues"],
    info["cond_before"], info["cond_after"], info["cosine"] (K, K) and info["min_cosine"].
    """
    _check_matrix(G)
    K = G.shape[1]
    w = _weights(weights, K, G)
    M = _gram(G)  # (K, K) float64
    stats = _stats_from_gram(M)
    eigvals, V = torch.linalg.eigh(M)  # (K,), (K, K) ascending
    keep = eigvals > _eig_tolerance(eigvals, K)
    lam, Vr = eigvals[keep], V[:, keep]  # (r,), (K, r)
    if lam.numel() == 0:
        B = torch.zeros_like(M)
    else:
        sigma_inv = torch.diag(lam.rsqrt())  # (r, r)
        B = lam.min().sqrt() * (Vr @ sigma_inv @ Vr.T)  # (K, K)
    aligned = G.detach() @ B.to(G.dtype)  # (P, K)
    update = aligned @ w  # (P,)
    info: CombineInfo = {
        "aligned": aligned,
        "B": B,
        "rank": int(keep.sum()),
        "eigenvalues": eigvals.tolist(),
        "cond_before": stats["condition_number"],
        "cond_after": _condition_number(B.T @ M @ B),
        "cosine": stats["cosine"],
        "min_cosine": stats["min_cosine"],
    }
    return update, info


def pcgrad(
    G: torch.Tensor,
    weights: torch.Tensor | Sequence[float] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, CombineInfo]:
    """PCGrad, "gradient surgery" (Yu et al. 2020, Algorithm 1).

    For each task i, start from g_i and visit the other tasks j in a random order (torch.randperm
    with `generator`; a seeded generator makes it deterministic); whenever the current projected
    g_i^PC conflicts with the *original* g_j (g_i^PC·g_j < 0), remove that component:
    g_i^PC ← g_i^PC − (g_i^PC·g_j / ‖g_j‖²)·g_j. update = Σ_i ω_i·g_i^PC (ω after projection).

    G: (P, K); weights ω: (K,) or None (ones). Returns (update (P,), info) with
    info["projected"] (P, K), info["n_conflicts"] (projections made) and the conflict stats.
    """
    _check_matrix(G)
    K = G.shape[1]
    w = _weights(weights, K, G)
    Gd = G.detach()
    sq_norms = (Gd * Gd).sum(dim=0)  # (K,)
    projected = Gd.clone()  # (P, K)
    n_conflicts = 0
    for i in range(K):
        g_i = projected[:, i].clone()  # (P,)
        order = torch.randperm(K, generator=generator).tolist()
        for j in order:
            if j == i or sq_norms[j] <= 0:
                continue
            dot = torch.dot(g_i, Gd[:, j])
            if dot < 0:
                g_i = g_i - (dot / sq_norms[j]) * Gd[:, j]
                n_conflicts += 1
        projected[:, i] = g_i
    stats = gradient_conflict_stats(G)
    info = CombineInfo(projected=projected, n_conflicts=n_conflicts, **stats)
    return projected @ w, info


def weighted_sum(
    G: torch.Tensor, weights: torch.Tensor | Sequence[float] | None = None
) -> tuple[torch.Tensor, CombineInfo]:
    """Plain linear scalarisation: update = Σ_k ω_k·g_k = G·ω (the MOLMA comparison baseline).

    G: (P, K); weights: (K,) or None (ones). Returns (update (P,), conflict stats).
    """
    _check_matrix(G)
    w = _weights(weights, G.shape[1], G)
    return G.detach() @ w, CombineInfo(**gradient_conflict_stats(G))


def combine_gradients(
    method: str,
    G: torch.Tensor,
    weights: torch.Tensor | Sequence[float] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, CombineInfo]:
    """Dispatch to one of the combiners in ``METHODS`` (MOLMA Algorithm 1, PCGrad, sum).

    G: (P, K); weights: (K,) or None. `generator` is used by PCGrad only.
    """
    if method == "aligned_mtl":
        return aligned_mtl(G, weights)
    if method == "pcgrad":
        return pcgrad(G, weights, generator=generator)
    if method == "weighted_sum":
        return weighted_sum(G, weights)
    raise ValueError(f"unknown gradient combiner {method!r}; valid: {', '.join(METHODS)}")


def flatten_grads(params: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """Concatenate the ``.grad`` of `params` into one vector (a column of G); None counts as 0.

    The order is the iteration order of `params`; use the same list for :func:`assign_flat_grad`.
    All gradients are cast to the dtype of the first parameter. Returns (P,).
    """
    params = list(params)
    if not params:
        raise ValueError("flatten_grads needs at least one parameter")
    dtype, device = params[0].dtype, params[0].device
    chunks = [
        (p.grad if p.grad is not None else torch.zeros_like(p))
        .reshape(-1)
        .to(dtype=dtype, device=device)
        for p in params
    ]
    return torch.cat(chunks)  # (P,)


def assign_flat_grad(params: Iterable[torch.nn.Parameter], flat: torch.Tensor) -> None:
    """Write an update vector (P,) back into ``.grad`` of `params` (inverse of flatten_grads).

    Each parameter receives a fresh tensor of its own shape, dtype and device.
    """
    params = list(params)
    total = sum(p.numel() for p in params)
    if flat.dim() != 1 or flat.numel() != total:
        raise ValueError(f"flat gradient has shape {tuple(flat.shape)}, parameters need ({total},)")
    offset = 0
    for p in params:
        n = p.numel()
        chunk = flat[offset : offset + n].view(p.shape)
        p.grad = chunk.detach().to(dtype=p.dtype, device=p.device).clone()
        offset += n
