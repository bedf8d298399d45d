"""Tests for moalign.algorithms.aligned_mtl: Aligned-MTL vs an SVD reference, PCGrad by hand."""

from __future__ import annotations

import math

import pytest
import torch

from moalign.algorithms import aligned_mtl as GR


def close(a: torch.Tensor, b, atol: float = 1e-8) -> None:
    b = torch.as_tensor(b, dtype=a.dtype)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, atol=atol, rtol=0), (a, b)


def _nonzero_singular_values(A: torch.Tensor) -> torch.Tensor:
    s = torch.linalg.svdvals(A.double())
    return s[s > s.max() * 1e-9]


# ----------------------------------------------------------------------------- Aligned-MTL


def test_aligned_mtl_matches_svd_reference():
    g = torch.Generator().manual_seed(0)
    G = torch.randn(50, 3, generator=g, dtype=torch.float64)
    G[:, 1] *= 10.0  # a dominating gradient
    G[:, 2] -= 0.5 * G[:, 0]  # and some conflict
    update, info = GR.aligned_mtl(G)
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    expected = S.min() * U @ Vh  # sigma_min * U V^T, independent of eigh
    close(info["aligned"], expected, atol=1e-10)
    close(update, expected.sum(dim=1), atol=1e-10)
    close(
        _nonzero_singular_values(info["aligned"]),
        torch.full((3,), float(S.min()), dtype=torch.float64),
        atol=1e-10,
    )
    assert info["rank"] == 3
    assert info["cond_before"] == pytest.approx(float(S.max() / S.min()), rel=1e-9)
    assert info["cond_after"] == pytest.approx(1.0, abs=1e-9)
    assert info["cosine"].shape == (3, 3)


def test_aligned_mtl_weights():
    g = torch.Generator().manual_seed(1)
    G = torch.randn(20, 2, generator=g, dtype=torch.float64)
    w = torch.tensor([0.25, 2.0], dtype=torch.float64)
    update, info = GR.aligned_mtl(G, w)
    close(update, info["aligned"] @ w, atol=1e-12)


def test_aligned_mtl_orthogonal_inputs_scaled_to_smallest_norm():
    G = torch.zeros(5, 3, dtype=torch.float64)
    G[0, 0], G[1, 1], G[2, 2] = 3.0, 1.0, 2.0
    update, info = GR.aligned_mtl(G)
    expected = torch.zeros(5, 3, dtype=torch.float64)
    expected[0, 0] = expected[1, 1] = expected[2, 2] = 1.0
    close(info["aligned"], expected, atol=1e-12)
    close(update, [1.0, 1.0, 1.0, 0.0, 0.0], atol=1e-12)
    assert info["cond_before"] == pytest.approx(3.0)
    assert info["min_cosine"] == pytest.approx(0.0)


def test_aligned_mtl_rank_deficient_duplicate_columns():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(30, generator=g, dtype=torch.float64)
    b = torch.randn(30, generator=g, dtype=torch.float64)
    G = torch.stack([a, a, b], dim=1)
    update, info = GR.aligned_mtl(G)
    assert torch.isfinite(update).all() and torch.isfinite(info["aligned"]).all()
    assert info["rank"] == 2
    s_g = _nonzero_singular_values(G)
    s_a = _nonzero_singular_values(info["aligned"])
    assert s_a.numel() == 2
    close(s_a, torch.full((2,), float(s_g.min()), dtype=torch.float64), atol=1e-9)
    assert info["cond_after"] == pytest.approx(1.0, abs=1e-8)


def test_aligned_mtl_zero_and_float32():
    update, info = GR.aligned_mtl(torch.zeros(7, 2))
    assert torch.equal(update, torch.zeros(7))
    assert info["rank"] == 0
    g = torch.Generator().manual_seed(3)
    G = torch.randn(100, 2, generator=g)
    update, info = GR.aligned_mtl(G)
    assert update.dtype == torch.float32
    s = _nonzero_singular_values(info["aligned"])
    assert float(s.max() / s.min()) == pytest.approx(1.0, abs=1e-5)


# ----------------------------------------------------------------------------- PCGrad


def test_pcgrad_hand_conflict_2d():
    G = torch.tensor([[1.0, -1.0], [0.0, 1.0]])  # g1 = (1, 0), g2 = (-1, 1): g1.g2 = -1
    update, info = GR.pcgrad(G, generator=torch.Generator().manual_seed(0))
    # g1' = g1 - (-1/2) g2 = (0.5, 0.5); g2' = g2 - (-1/1) g1 = (0, 1)
    close(info["projected"], [[0.5, 0.0], [0.5, 1.0]], atol=1e-7)
    close(update, [0.5, 1.5], atol=1e-7)
    assert info["n_conflicts"] == 2
    w_update, _ = GR.pcgrad(G, [2.0, 1.0])
    close(w_update, [1.0, 2.0], atol=1e-7)


def test_pcgrad_no_conflict_passes_through():
    G = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    update, info = GR.pcgrad(G)
    close(info["projected"], G)
    assert info["n_conflicts"] == 0
    close(update, [2.0, 2.0])


def test_pcgrad_seeded_is_deterministic_and_removes_conflict_pairwise():
    g = torch.Generator().manual_seed(4)
    G = torch.randn(6, 4, generator=g)
    u1, i1 = GR.pcgrad(G, generator=torch.Generator().manual_seed(7))
    u2, i2 = GR.pcgrad(G, generator=torch.Generator().manual_seed(7))
    assert torch.equal(u1, u2) and torch.equal(i1["projected"], i2["projected"])
    # K = 2: the projected gradient of each task no longer conflicts with the other's
    G2 = torch.tensor([[1.0, -2.0], [0.5, 1.0], [0.0, 0.3]])
    _, info = GR.pcgrad(G2)
    P = info["projected"]
    assert torch.dot(P[:, 0], G2[:, 1]) >= -1e-6
    assert torch.dot(P[:, 1], G2[:, 0]) >= -1e-6


# ----------------------------------------------------------------------------- others


def test_weighted_sum_and_dispatch():
    G = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    update, info = GR.weighted_sum(G, [1.0, 0.5])
    close(update, [2.0, 5.0])
    assert "cosine" in info
    for method in GR.METHODS:
        u, _ = GR.combine_gradients(method, G, [1.0, 1.0])
        assert u.shape == (2,)
    with pytest.raises(ValueError, match="aligned_mtl, pcgrad, weighted_sum"):
        GR.combine_gradients("mgda", G, None)
    with pytest.raises(ValueError):
        GR.weighted_sum(G, [1.0, 2.0, 3.0])


def test_gradient_conflict_stats_hand():
    G = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
    stats = GR.gradient_conflict_stats(G)
    expected = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]])
    close(stats["cosine"], expected.double(), atol=1e-12)
    assert stats["min_cosine"] == pytest.approx(-1.0)
    # singular values of G: g1 and g3 are antiparallel -> sqrt(2) and 2
    assert stats["condition_number"] == pytest.approx(2 / math.sqrt(2))
    z = GR.gradient_conflict_stats(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    assert z["cosine"][0, 1] == 0.0


def test_flatten_and_assign_roundtrip():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    extra = torch.nn.Parameter(torch.zeros(4))  # never gets a gradient
    params = [lin.weight, lin.bias, extra]
    lin(torch.randn(5, 3)).sum().backward()
    flat = GR.flatten_grads(params)
    assert flat.shape == (6 + 2 + 4,)
    close(flat[:6], lin.weight.grad.reshape(-1))
    close(flat[8:], torch.zeros(4))
    new = torch.arange(12, dtype=torch.float32)
    GR.assign_flat_grad(params, new)
    close(lin.weight.grad, new[:6].view(2, 3))
    close(lin.bias.grad, new[6:8])
    close(extra.grad, new[8:])
    new[0] = 100.0  # the parameters got their own copies
    assert lin.weight.grad[0, 0] == 0.0
    with pytest.raises(ValueError):
        GR.assign_flat_grad(params, torch.zeros(11))


def test_aligned_update_through_parameters():
    """End to end: two losses, per-task grads -> G -> aligned update written into .grad."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 1)
    params = list(lin.parameters())
    x = torch.randn(8, 4)
    cols = []
    for target in (1.0, -1.0):
        lin.zero_grad()
        ((lin(x) - target) ** 2).mean().backward()
        cols.append(GR.flatten_grads(params))
    G = torch.stack(cols, dim=1)
    update, info = GR.combine_gradients("aligned_mtl", G, None)
    GR.assign_flat_grad(params, update)
    close(GR.flatten_grads(params), update)
    assert info["cond_after"] == pytest.approx(1.0, abs=1e-4)


# ----------------------------------------------------------------------------- numerical rank


def _svd_aligned(G: torch.Tensor, rank: int) -> torch.Tensor:
    """Reference Ĝ = σ_r·U_r·V_rᵀ from the SVD of G (float64) truncated to its `rank`."""
    U, S, Vh = torch.linalg.svd(G.double(), full_matrices=False)
    return S[rank - 1] * U[:, :rank] @ Vh[:rank]


@pytest.mark.parametrize(("seed", "dtype"), [(0, torch.float64), (2, torch.float64),
                                             (3, torch.float32), (4, torch.float32)])
def test_aligned_mtl_dependent_columns_drop_a_tiny_positive_null_eigenvalue(seed, dtype):
    """G = [a, b, 0.3a + 0.7b] has rank 2, but eigh returns its null eigenvalue as a tiny
    *positive* number for these seeds: only the eps rule (not `λ > 0`) can drop it."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(40, generator=g, dtype=dtype)
    b = torch.randn(40, generator=g, dtype=dtype)
    G = torch.stack([a, b, 0.3 * a + 0.7 * b], dim=1)
    null = torch.linalg.eigvalsh(G.double().T @ G.double())[0]
    assert 0.0 < null < 1e-12  # the regime this test is about
    update, info = GR.aligned_mtl(G)
    assert info["rank"] == 2
    expected = _svd_aligned(G, 2)
    close(info["aligned"].double(), expected, atol=1e-5 if dtype == torch.float32 else 1e-10)
    close(update.double(), expected.sum(dim=1), atol=1e-5 if dtype == torch.float32 else 1e-10)
    assert info["cond_after"] == pytest.approx(1.0, abs=1e-6)


def test_aligned_mtl_nearly_parallel_float32_gradients_keep_their_size():
    """Two float32 gradients of norm 44 that agree up to rounding-sized noise: the reference
    code (float32 eps in the rank rule) treats G as rank 1 and returns ≈ g1 + g2 (norm ≈ 88);
    a float64-eps rule keeps the noise direction and shrinks the step to σ_min ≈ 3e-5."""
    g = torch.Generator().manual_seed(5)
    g1 = torch.randn(4096, generator=g)
    g1 = g1 / g1.norm() * 44.0
    noise = torch.randn(4096, generator=g)
    g2 = g1 + noise / noise.norm() * 4e-5
    G = torch.stack([g1, g2], dim=1)  # (P, 2) float32
    # reference: LibMTL's rule evaluated in float32, then B = v1·v1ᵀ for the one kept pair
    M32 = G.T @ G
    lam, V = torch.linalg.eigh(M32)
    kept = lam > lam.max() * 2 * torch.finfo(torch.float32).eps
    assert kept.tolist() == [False, True]
    v1 = V[:, 1:].double()
    expected = G.double() @ (v1 @ v1.T) @ torch.ones(2, dtype=torch.float64)
    update, info = GR.aligned_mtl(G)
    assert info["rank"] == 1
    assert float(update.norm()) == pytest.approx(88.0, rel=1e-3)
    close(update.double(), expected, atol=1e-3)
    # float32 and float64 Gram matrices agree on the rank: the eps, not the precision, decides
    assert GR.aligned_mtl(G.double())[1]["rank"] == 1
