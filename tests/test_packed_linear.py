"""Prepacked oneDNN linear layers compute what `F.linear` computes, forward and backward, follow
their weight when it changes, and stay out of the way where they do not apply."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from moalign import packed_linear
from moalign.core.errors import ConfigError
from moalign.fastpath import merged_lora
from moalign.models import attach_lora, tiny_causal_lm, to_device
from moalign.rollout import policy_logprobs, sample
from moalign.sampling import Sampling

pytestmark = pytest.mark.skipif(not packed_linear.available(),
                                reason="this torch build cannot prepack linear weights")


def layer(out_f: int = 24, in_f: int = 16, bias: bool = True) -> nn.Linear:
    torch.manual_seed(0)
    m = nn.Linear(in_f, out_f, bias=bias)
    m.weight.requires_grad_(False)  # a frozen base weight, as under LoRA
    packed_linear.install(m)
    assert type(m) is packed_linear.PackedLinear
    return m


def n_packed(m: nn.Module) -> int:
    return len(packed_linear._CACHE.get(m, []))


@pytest.mark.parametrize("shape", [(6, 16), (2, 5, 16)])
def test_forward_matches_f_linear_on_the_packed_path(shape: tuple[int, ...]) -> None:
    m = layer()
    x = torch.randn(shape)
    with torch.no_grad():
        y = m(x)
    assert n_packed(m) == 1  # the packed kernel ran, not the fallback
    torch.testing.assert_close(y, x @ m.weight.T + m.bias, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pack_backward", [True, False])  # MOALIGN_PACKED_LINEAR=all / forward
def test_backward_gives_the_input_and_bias_gradients_of_f_linear(monkeypatch,
                                                                 pack_backward: bool) -> None:
    monkeypatch.setattr(packed_linear, "PACK_BACKWARD", pack_backward)
    m = layer()
    x = torch.randn(3, 7, 16, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    g = torch.randn(3, 7, 24)
    (m(x) * g).sum().backward()
    bias_grad = m.bias.grad.clone()
    m.bias.grad = None
    (F.linear(x_ref, m.weight, m.bias) * g).sum().backward()
    assert n_packed(m) == 1
    assert (packed_linear._CACHE[m][0].transposed is not None) == pack_backward
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bias_grad, m.bias.grad, rtol=1e-5, atol=1e-5)


def test_a_changed_weight_is_repacked() -> None:
    m = layer(bias=False)
    x = torch.randn(5, 16)
    with torch.no_grad():
        m(x)
        m.weight.mul_(-2.0)  # in place: same storage, new version
        torch.testing.assert_close(m(x), x @ m.weight.T, rtol=1e-5, atol=1e-5)
        m.weight.data = torch.randn(24, 16)  # a new tensor
        torch.testing.assert_close(m(x), x @ m.weight.T, rtol=1e-5, atol=1e-5)
    assert n_packed(m) == packed_linear.SLOTS
    packed_linear.release(m)
    assert n_packed(m) == 1  # the copy of the current weight stays
    assert packed_linear._CACHE[m][0].key == packed_linear._key(m.weight)


def test_fallbacks_keep_autograd_autocast_and_few_rows() -> None:
    m = layer()
    m.weight.requires_grad_(True)  # trainable weight in a gradient pass: plain F.linear
    m(torch.randn(6, 16)).sum().backward()
    assert m.weight.grad is not None and n_packed(m) == 0
    with torch.no_grad():
        m(torch.randn(1, 16))  # one row on a small weight: MKL
        assert n_packed(m) == 0
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert m(torch.randn(6, 16)).dtype == torch.bfloat16
        assert n_packed(m) == 0


def test_install_keeps_the_state_dict_and_copies_cleanly() -> None:
    plain = tiny_causal_lm().model
    keys = list(plain.state_dict())
    assert sum(type(m) is packed_linear.PackedLinear for m in plain.modules()) > 0
    twin = copy.deepcopy(plain)
    ids = torch.randint(5, 500, (4, 9))
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, twin(ids).logits)
    n = packed_linear.uninstall(twin)
    assert n > 0 and not any(type(m) is packed_linear.PackedLinear for m in twin.modules())
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, twin(ids).logits, rtol=1e-4, atol=1e-5)
    assert list(twin.state_dict()) == keys
    assert to_device(twin, "cpu") is twin and packed_linear.uninstall(twin) == n


def test_lora_log_probs_and_gradients_match_the_plain_model() -> None:
    """A SCST gradient pass: frozen packed base weights, trainable LoRA; the same log-probs and
    LoRA gradients as the model with plain layers, and the merged sampling copies released."""
    policies = [attach_lora(tiny_causal_lm(), "x", dropout=0.0) for _ in range(2)]
    packed_linear.uninstall(policies[1].model)
    for p in policies:
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for name, w in p.model.named_parameters():
                if "lora_B" in name:
                    w.copy_(torch.randn(w.shape, generator=gen) * 0.1)
    s = Sampling(max_new_tokens=6, temperature=1.0, top_k=0, seed=4)
    rollouts = [sample(p, ["Hi there.", "Tell me a story."], s, n=3) for p in policies]
    assert torch.equal(rollouts[0].response_ids, rollouts[1].response_ids)
    grads = []
    for p in policies:
        p.model.train()
        logp = policy_logprobs(p, rollouts[0])
        logp.sum().backward()
        grads.append({n: w.grad for n, w in p.model.named_parameters() if w.grad is not None})
    torch.testing.assert_close(logp, policy_logprobs(policies[0], rollouts[0]),
                               rtol=1e-4, atol=1e-5)
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-3, atol=1e-5)
    base = [m for m in policies[0].model.modules() if type(m) is packed_linear.PackedLinear]
    policies[0].model.eval()
    with torch.no_grad(), merged_lora(policies[0].model):
        policies[0].model(rollouts[0].query_ids)  # packs the merged weights
    assert base and all(n_packed(m) <= 1 for m in base)
    assert all(e.key == packed_linear._key(m.weight)  # only the base weights' copies stay
               for m in base for e in packed_linear._CACHE.get(m, []))


def test_an_unknown_mode_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(packed_linear, "MODE", "fwd")
    monkeypatch.setattr(packed_linear, "_AVAILABLE", None)
    with pytest.raises(ConfigError, match=r"MOALIGN_PACKED_LINEAR='fwd' is not one of"):
        packed_linear.available()
    monkeypatch.setattr(packed_linear, "MODE", "0")
    assert not packed_linear.available()  # off: models keep plain layers
    assert packed_linear.install(nn.Linear(4, 4)) == 0
