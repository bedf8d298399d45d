"""Tests for moalign.algorithms.losses against hand-computed tensors and naive references."""

from __future__ import annotations

import math

import pytest
import torch

from moalign.algorithms import losses as L


def close(a: torch.Tensor, b, atol: float = 1e-6) -> None:
    b = torch.as_tensor(b, dtype=a.dtype)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, atol=atol, rtol=0), (a, b)


# ----------------------------------------------------------------------------- SCST


def test_transform_reward():
    r = torch.tensor([0.0, 0.5, 1.0])
    assert L.transform_reward(r, "identity") is r
    close(L.transform_reward(r, "log"), [math.log(1e-4), math.log(0.5), math.log(0.9999)])
    with pytest.raises(ValueError, match="identity"):
        L.transform_reward(r, "sqrt")  # type: ignore[arg-type]


def test_scst_advantages_hand():
    r = torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 6.0])
    close(L.scst_advantages(r, 3), [-1.0, 0.0, 1.0, -2.0, -2.0, 4.0])
    close(L.scst_advantages(r, 1), torch.zeros(6))
    with pytest.raises(ValueError):
        L.scst_advantages(r, 4)


def _scst_batch():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -9.0]], requires_grad=True)
    ref = torch.tensor([[-1.5, -2.0, 0.0], [-0.5, -1.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    return logp, ref, mask


def test_scst_loss_value_and_gradient_hand():
    logp, _, mask = _scst_batch()
    adv = torch.tensor([1.0, -1.0])
    loss = L.scst_loss(logp, mask, adv)
    # S = [-3, -1];  -mean(1*-3 + -1*-1) = 1
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    close(logp.grad, [[-0.5, -0.5, 0.0], [0.5, 0.5, 0.0]])


def test_per_sample_kl_hand():
    logp, ref, mask = _scst_batch()
    close(L.per_sample_kl(logp, ref, mask).detach(), [0.5, 0.5])


def test_scst_kl_term_acts_per_sample_with_zero_mean_advantages():
    logp, ref, mask = _scst_batch()
    ref = torch.tensor([[-1.5, -2.0, 0.0], [-0.5, -2.0, 0.0]])  # kl = [0.5, 1.5]
    adv = torch.tensor([0.3, -0.3])  # zero mean, as SCST always gives
    coef = 0.2
    kl = L.per_sample_kl(logp, ref, mask)
    loss = L.scst_loss(logp, mask, adv, kl, coef)
    base = L.scst_loss(logp, mask, adv)
    # the value of the KL term is coef * mean KL
    assert (loss - base).item() == pytest.approx(coef * 1.0)
    (g_kl,) = torch.autograd.grad(loss - base, logp)
    expected = coef / 2 * torch.tensor([[0.5, 0.5, 0.0], [1.5, 1.5, 0.0]])
    close(g_kl, expected)
    assert (g_kl.abs().sum(dim=1) > 0).all()
    # The authors' batch-scalar KL inside the advantage product has no effect at all:
    seq = (logp * mask).sum(1)
    scalar_kl = kl.detach().mean()
    authors = (adv * (seq + coef * scalar_kl)).mean() - (adv * seq).mean()
    assert authors.item() == pytest.approx(0.0, abs=1e-7)


def test_scst_loss_without_kl_ignores_coef():
    logp, ref, mask = _scst_batch()
    adv = torch.tensor([1.0, -1.0])
    a = L.scst_loss(logp, mask, adv, None, 5.0)
    b = L.scst_loss(logp, mask, adv)
    assert a.item() == b.item()


def test_combine_rewards():
    R = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    close(L.combine_rewards(R, [0.5, 0.25]), [1.0, 2.5])
    with pytest.raises(ValueError):
        L.combine_rewards(R, [1.0, 1.0, 1.0])


# ----------------------------------------------------------------------------- MOLMA rewards


def test_logit_whiten_hand_example():
    p = math.exp(1) / (1 + math.exp(1))  # logit = 1
    r = torch.tensor([[0.5, 0.3], [p, 0.3]])
    out = L.logit_whiten(r)
    # column 0: logits [0, 1], mean 0.5, population std 0.5 -> [-1, 1]; column 1 constant -> 0
    close(out, [[-1.0, 0.0], [1.0, 0.0]], atol=1e-5)


def test_logit_whiten_edges_finite():
    r = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    out = L.logit_whiten(r)
    assert torch.isfinite(out).all()
    x = torch.tensor([-1.0, 1.0, -1.0]) * math.log(0.9999 / 1e-4)
    ref = (x - x.mean()) / (x.std(unbiased=False) + 1e-8)
    close(out[:, 0], ref, atol=1e-5)
    # custom eps is honoured
    out2 = L.logit_whiten(torch.tensor([[0.0], [1.0]]), eps=0.1)
    close(out2, [[-1.0], [1.0]], atol=1e-5)


def test_logit_whiten_batch_of_one_and_constant():
    assert torch.equal(L.logit_whiten(torch.tensor([[0.7, 0.0, 1.0]])), torch.zeros(1, 3))
    out = L.logit_whiten(torch.full((5, 2), 0.1))
    assert torch.equal(out, torch.zeros(5, 2))


def test_kl_penalized_rewards_placement():
    scores = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    logp = torch.tensor([[-1.0, -1.0, -1.0, -7.0], [-2.0, -1.0, -7.0, -7.0], [0.0, 0.0, 0.0, 0.0]])
    ref = torch.tensor([[-2.0, -1.0, -0.5, 0.0], [-1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    out = L.kl_penalized_rewards(scores, logp, ref, mask, beta=0.1)
    assert out.shape == (3, 4, 2)
    kl0 = [-0.1 * 1.0, 0.0, -0.1 * -0.5, 0.0]
    kl1 = [-0.1 * -1.0, 0.0, 0.0, 0.0]
    exp = torch.zeros(3, 4, 2)
    exp[0, :, 0] = torch.tensor(kl0)
    exp[0, :, 1] = torch.tensor(kl0)
    exp[0, 2] += torch.tensor([1.0, 2.0])
    exp[1, :, 0] = torch.tensor(kl1)
    exp[1, :, 1] = torch.tensor(kl1)
    exp[1, 1] += torch.tensor([3.0, 4.0])
    close(out, exp)  # row 2 has no valid token: all zeros


# ----------------------------------------------------------------------------- GAE


def test_gae_hand_example():
    rewards = torch.tensor([0.0, 0.0, 1.0, 5.0]).view(1, 4, 1)
    values = torch.tensor([0.5, 0.6, 0.7, 9.0]).view(1, 4, 1)
    mask = torch.tensor([[1, 1, 1, 0]])
    adv, ret = L.gae(rewards, values, mask, gamma=1.0, lam=0.95)
    # d2 = 1 - 0.7 = 0.3; d1 = 0.7 - 0.6 = 0.1; d0 = 0.6 - 0.5 = 0.1
    a2 = 0.3
    a1 = 0.1 + 0.95 * a2
    a0 = 0.1 + 0.95 * a1
    close(adv.view(-1), [a0, a1, a2, 0.0], atol=1e-6)
    close(ret.view(-1), [a0 + 0.5, a1 + 0.6, a2 + 0.7, 0.0], atol=1e-6)


def _naive_gae(r, v, lengths, gamma, lam):
    B, T, K = r.shape
    adv = torch.zeros(B, T, K, dtype=torch.float64)
    for b in range(B):
        for k in range(K):
            n = lengths[b]
            last = 0.0
            for t in reversed(range(n)):
                nv = float(v[b, t + 1, k]) if t + 1 < n else 0.0
                delta = float(r[b, t, k]) + gamma * nv - float(v[b, t, k])
                last = delta + gamma * lam * last
                adv[b, t, k] = last
    return adv


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.8)])
def test_gae_matches_naive_loop_on_ragged_masks(gamma, lam):
    g = torch.Generator().manual_seed(3)
    B, T, K = 5, 9, 3
    lengths = [9, 1, 4, 0, 6]
    r = torch.randn(B, T, K, generator=g, dtype=torch.float64)
    v = torch.randn(B, T, K, generator=g, dtype=torch.float64)
    mask = torch.zeros(B, T)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
    adv, ret = L.gae(r, v, mask, gamma=gamma, lam=lam)
    ref = _naive_gae(r, v, lengths, gamma, lam)
    close(adv, ref, atol=1e-10)
    close(ret, (ref + v) * mask[..., None].double(), atol=1e-10)


def test_whiten_masked():
    torch.manual_seed(0)
    x = torch.randn(4, 6) * 3 + 2
    mask = torch.ones(4, 6)
    mask[1, 3:] = 0
    mask[3, 1:] = 0
    out = L.whiten(x, mask)
    valid = out[mask.bool()]
    assert valid.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert valid.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert (out[~mask.bool()] == 0).all()
    kept = L.whiten(x, mask, shift_mean=False)[mask.bool()]
    assert kept.mean().item() == pytest.approx(x[mask.bool()].mean().item(), abs=1e-5)


def test_whiten_per_objective():
    torch.manual_seed(1)
    x = torch.randn(3, 5, 2)
    x[..., 1] = x[..., 1] * 100 + 7
    mask = torch.ones(3, 5)
    mask[0, 2:] = 0
    out = L.whiten(x, mask)
    for k in range(2):
        close(out[..., k], L.whiten(x[..., k], mask), atol=1e-5)


# ----------------------------------------------------------------------------- APA / value


def test_apa_loss_hand():
    logp = torch.tensor([[-1.0, -2.0, -5.0]], requires_grad=True)
    ref = torch.tensor([[-1.5, -1.5, 0.0]])
    adv = torch.tensor([[[0.95], [-0.95], [100.0]]])  # (1, 3, K=1)
    mask = torch.tensor([[1, 1, 0]])
    (loss,) = L.apa_losses(logp, ref, adv, mask, lam=0.95)
    # log ratio [0.5, -0.5]; A/lam [1, -1]; errors [-0.5, 0.5] -> mean 0.25
    assert loss.item() == pytest.approx(0.25)
    loss.backward()
    close(logp.grad, [[-0.5, 0.5, 0.0]])  # d/dx mean(err^2) = 2*err/2


def test_apa_losses_vectorised():
    logp = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -1.5]])
    adv = torch.tensor([[[0.95, 0.0], [-0.95, 0.95]]])  # (1, 2, 2)
    out = L.apa_losses(logp, ref, adv, torch.ones(1, 2), lam=0.95)
    # k=1: errors [0.5, -1.5] -> (0.25 + 2.25)/2
    close(out, [0.25, 1.25])
    # APA code convention adv_coeff_sq = 1/lam
    out10 = L.apa_losses(logp, ref, adv, torch.ones(1, 2), lam=0.1)
    assert out10[0].item() == pytest.approx(((0.5 - 9.5) ** 2 + (-0.5 + 9.5) ** 2) / 2)


def test_value_losses_hand_and_clip():
    values = torch.tensor([[[1.0], [2.0], [9.0]]])  # (1, 3, 1)
    old = torch.tensor([[[0.8], [2.4], [0.0]]])
    ret = torch.tensor([[[0.0], [2.5], [0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    close(L.value_losses(values, old, ret, mask), [0.5 * (1.0 + 0.25) / 2])
    close(L.value_losses(values, old, ret, mask, clip=0.1), [0.5 * (1.0 + 0.25) / 2])
    v = torch.tensor([[[1.0]]])
    o = torch.tensor([[[0.0]]])
    r = torch.tensor([[[1.0]]])
    close(L.value_losses(v, o, r, torch.ones(1, 1)), [0.0])
    close(L.value_losses(v, o, r, torch.ones(1, 1), clip=0.2), [0.5 * 0.64], atol=1e-6)


# ----------------------------------------------------------------------------- reward models


def test_bradley_terry_hand():
    rc = torch.tensor([1.0, 0.0])
    rr = torch.tensor([0.0, 0.0])
    expected = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    assert L.bradley_terry_loss(rc, rr).item() == pytest.approx(expected, rel=1e-6)
    assert L.pairwise_accuracy(rc, rr) == pytest.approx(0.75)  # tie counts half
    assert L.pairwise_accuracy(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0])) == 0.5
    # numerically stable for huge margins
    assert torch.isfinite(L.bradley_terry_loss(torch.tensor([-1e4]), torch.tensor([1e4])))


def test_bradley_terry_trains_separable_scorer():
    g = torch.Generator().manual_seed(0)
    x_c = torch.rand(32, generator=g) + 0.5  # chosen responses have larger features
    x_r = torch.rand(32, generator=g) - 1.5
    w = torch.zeros(1, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=0.5)
    start = L.bradley_terry_loss(w * x_c + b, w * x_r + b).item()
    for _ in range(20):
        opt.zero_grad()
        loss = L.bradley_terry_loss(w * x_c + b, w * x_r + b)
        loss.backward()
        opt.step()
    assert start == pytest.approx(math.log(2))
    assert loss.item() < 0.2
    with torch.no_grad():
        assert L.pairwise_accuracy(w * x_c + b, w * x_r + b) == 1.0


def test_so_baselines():
    R = torch.tensor([[1.0, 3.0], [-2.0, 0.0]])
    close(L.so_weighted(R), [2.0, -1.0])
    r_help = torch.tensor([0.9, 0.8, 0.1])
    r_safe = torch.tensor([0.2, 0.6, 0.5])
    close(L.so_piecewise(r_help, r_safe, delta=0.5), [0.2, 0.8, 0.1])
