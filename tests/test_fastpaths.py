"""The fast paths compute what the plain paths compute: shared-prompt log-probs and prefill,
LoRA merged for sampling, response-only LM-head logits (tiny real models, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import moalign.molma.trainer as trainer
import moalign.rollout as rollout
from moalign.evaluation.evaluate import score_distinct
from moalign.fastpath import dropout_active, merged_lora
from moalign.models import Policy, attach_lora, autocast_dtype, format_prompts, tiny_causal_lm
from moalign.molma.config import MolmaConfig
from moalign.rewards.scorers import build_scorer
from moalign.rollout import (
    Rollout,
    left_pad_positions,
    policy_logprobs,
    prompt_groups,
    reference_logprobs,
    sample,
    shared_prefix_logits,
)
from moalign.sampling import Sampling

PROMPTS = ["Hi there, how are you today my good friend?", "Tell me a story.",
           "Why is the sky blue at noon?"]


def lora_policy(dropout: float = 0.0, seed: int = 0) -> Policy:
    """Tiny Llama with one LoRA adapter whose B matrices are random (a non-trivial delta)."""
    policy = attach_lora(tiny_causal_lm(seed), "x", dropout=dropout)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    policy.model.eval()
    return policy


@pytest.fixture(scope="module")
def policy() -> Policy:
    return lora_policy()


def full_forward_logprobs(policy: Policy, r: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """Reference: one forward over prompt + response with logits at EVERY position, then
    log-softmax (of logits / temperature) and the response positions picked by hand (N, Tr)."""
    ids = torch.cat([r.query_ids, r.response_ids], dim=1)
    attn = torch.cat([r.query_mask, r.response_mask], dim=1)
    logits = policy.model(input_ids=ids, attention_mask=attn,
                          position_ids=left_pad_positions(attn)).logits  # (N, Tq+Tr, V)
    tq, tr = r.query_ids.shape[1], r.response_ids.shape[1]
    out = torch.zeros(r.response_ids.shape)
    for t in range(tr):  # position tq-1+t predicts response token t
        logp = F.log_softmax(logits[:, tq - 1 + t].float() / temperature, dim=-1)
        out[:, t] = logp.gather(-1, r.response_ids[:, t:t + 1]).squeeze(-1)
    return out * r.response_mask


def rollout_with_eos_gaps(policy: Policy) -> Rollout:
    r = sample(policy, PROMPTS, Sampling(10, do_sample=True, seed=1), n=3)
    r.response_mask[0, 4:] = 0  # rows that ended early (EOS) must stay ignored
    r.response_mask[5, 7:] = 0
    return r


def test_prompt_groups_finds_contiguous_repeats() -> None:
    ids = torch.tensor([[0, 5], [0, 5], [1, 2], [0, 5], [0, 5], [0, 5]])
    mask = torch.ones_like(ids)
    first, rows = prompt_groups(ids, mask)
    assert first.tolist() == [0, 2, 3] and rows.tolist() == [0, 0, 1, 2, 2, 2]
    mask[1, 0] = 0  # same ids, other padding: another prompt
    assert prompt_groups(ids, mask)[0].tolist() == [0, 1, 2, 3]


def test_shared_prefix_logprobs_and_gradients_match_the_full_forward(policy: Policy) -> None:
    r = rollout_with_eos_gaps(policy)
    assert r.query_mask[:, 0].min() == 0  # prompts of different lengths: left padding
    assert shared_prefix_logits(policy.model, r) is not None  # the fast path is taken
    policy.model.train()  # LoRA dropout 0: the gradient pass may share the prompt
    fast = policy_logprobs(policy, r)
    params = [p for p in policy.model.parameters() if p.requires_grad]
    g_fast = torch.autograd.grad(fast.sum(), params)
    ref = full_forward_logprobs(policy, r)
    g_ref = torch.autograd.grad(ref.sum(), params)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    with torch.no_grad(), policy.model.disable_adapter():
        base = full_forward_logprobs(policy, r)
    torch.testing.assert_close(reference_logprobs(policy, r), base, atol=1e-5, rtol=1e-5)
    policy.model.eval()


def test_prompt_is_not_shared_while_dropout_draws_masks() -> None:
    policy = lora_policy(dropout=0.1)
    r = sample(policy, PROMPTS[:2], Sampling(4, do_sample=True, seed=0), n=2)
    policy.model.train()
    assert dropout_active(policy.model) and shared_prefix_logits(policy.model, r) is None
    policy.model.eval()
    assert not dropout_active(policy.model) and shared_prefix_logits(policy.model, r) is not None


def plain_generate(policy: Policy, n: int, **kw: object) -> torch.Tensor:
    """Reference: transformers' generate on the repeated prompts, adapters unmerged."""
    texts = format_prompts(policy, [p for p in PROMPTS for _ in range(n)])
    enc = policy.tokenizer(texts, return_tensors="pt", padding=True)
    out = policy.model.generate(**enc, pad_token_id=policy.tokenizer.pad_token_id, **kw)
    return out[:, enc["input_ids"].shape[1]:]


@pytest.mark.parametrize("merged", [True, False])
def test_sampling_fast_paths_give_the_plain_tokens(policy: Policy, monkeypatch,
                                                   merged: bool) -> None:
    """Shared prefill (+ merged LoRA) decodes the same greedy tokens as plain `generate`, and a
    seed reproduces the same samples."""
    monkeypatch.setattr(rollout, "MERGED_SAMPLING", merged)
    greedy = sample(policy, PROMPTS, Sampling.greedy(12), n=2)
    with torch.no_grad():
        ref = plain_generate(policy, 2, max_new_tokens=12, do_sample=False)
    assert torch.equal(greedy.response_ids, ref)
    s = Sampling(12, do_sample=True, seed=7)
    assert torch.equal(sample(policy, PROMPTS, s, n=3).response_ids,
                       sample(policy, PROMPTS, s, n=3).response_ids)


def test_merged_lora_is_exact_and_restores_the_weights(policy: Policy) -> None:
    before = {k: v.clone() for k, v in policy.model.state_dict().items()}
    enc = policy.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        plain = policy.model(**enc).logits
        with merged_lora(policy.model) as merged:
            folded = policy.model(**enc).logits
        with policy.model.disable_adapter():
            base = policy.model(**enc).logits
    assert merged
    torch.testing.assert_close(folded, plain, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(base, plain, atol=1e-3)  # the adapter matters
    after = policy.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit for bit


def test_merged_lora_declines_train_mode_and_disabled_adapters(policy: Policy) -> None:
    policy.model.train()
    with merged_lora(policy.model) as merged:
        assert not merged  # LoRA dropout would be lost
    policy.model.eval()
    with policy.model.disable_adapter(), merged_lora(policy.model) as merged:
        assert not merged  # adapters disabled by the caller: nothing to fold
    with merged_lora(policy.model.get_base_model()) as merged:
        assert not merged  # not a PEFT model


def test_sampling_applies_the_warpers_before_the_draw(policy: Policy) -> None:
    """top-k = 1 leaves one token: sampling must then give the greedy tokens."""
    greedy = sample(policy, PROMPTS, Sampling.greedy(8), n=2)
    top1 = sample(policy, PROMPTS, Sampling(8, do_sample=True, seed=5, top_k=1), n=2)
    assert torch.equal(greedy.response_ids, top1.response_ids)


def test_search_scores_each_distinct_pair_once() -> None:
    """The weight evaluator scores repeated (prompt, response) pairs once and copies the row."""
    seen: list[tuple[str, str]] = []

    def length(prompts: list[str], responses: list[str]) -> list[float]:
        seen.extend(zip(prompts, responses, strict=True))
        return [len(p) + 10.0 * len(r) for p, r in zip(prompts, responses, strict=True)]

    scorer = build_scorer({"kind": "python", "function": length, "name": "len"})
    prompts, responses = ["a", "bb", "a", "bb", "a"], ["x", "y", "x", "zz", "x"]
    matrix = score_distinct([scorer], prompts, responses)
    assert sorted(seen) == sorted({("a", "x"), ("bb", "y"), ("bb", "zz")})
    want = torch.tensor([[11.0], [12.0], [11.0], [22.0], [11.0]])  # by hand
    torch.testing.assert_close(matrix, want)


def test_sampling_pass_logprobs_equal_a_forward(policy: Policy) -> None:
    """`logprobs_at` = T: log softmax(z/T) of the RAW logits (top-p warps the sampling
    distribution, not these), equal to a separate full forward; `select` keeps them aligned."""
    sampling = Sampling(6, do_sample=True, temperature=0.7, top_p=0.8, seed=3)
    r = sample(policy, PROMPTS, sampling, n=2, logprobs_at=0.7)
    assert r.logprobs is not None
    with torch.no_grad():
        want = full_forward_logprobs(policy, r, temperature=0.7)
    torch.testing.assert_close(r.logprobs, want, atol=1e-5, rtol=0)
    part = r.select([4, 1])
    assert part.logprobs is not None and torch.equal(part.logprobs, r.logprobs[[4, 1]])
    same = sample(policy, PROMPTS, sampling, n=2)  # asking for them changes no token
    assert torch.equal(same.response_ids, r.response_ids) and same.logprobs is None


def test_sampling_pass_logprobs_respect_the_memory_budget(policy: Policy,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollout, "LOGITS_BUDGET", 0)
    assert sample(policy, PROMPTS, Sampling(4, do_sample=True, seed=1), logprobs_at=1.0
                  ).logprobs is None


def test_molma_collect_takes_log_pi_from_the_sampling_pass(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """No policy forward at rollout time, and the memory's KL is the one a forward gives."""
    base = tiny_causal_lm(0)
    base.model.save_pretrained(tmp_path / "base")
    base.tokenizer.save_pretrained(tmp_path / "base")

    def share(prompts: list[str], responses: list[str]) -> list[float]:
        return [min(len(r) / 40, 1.0) for r in responses]

    cfg = MolmaConfig(policy=str(tmp_path / "base"), prompts=[PROMPTS * 2], proportions=[1.0],
                      objectives=[{"kind": "python", "function": share, "name": "a"},
                                  {"kind": "python", "function": share, "name": "b"}],
                      test_fraction=0.0, memory=4, minibatch=2, max_new_tokens=5, beta=0.1,
                      temperature=0.8, out_dir=str(tmp_path / "out"), device="cpu",
                      progress=False)
    run = trainer.build_run(cfg)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in run.policy.model.named_parameters():
            if "lora_B" in name and ".policy." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    calls: list[bool] = []
    forward = trainer.logprobs
    monkeypatch.setattr(trainer, "logprobs", lambda run, r, reference=False: (
        calls.append(reference), forward(run, r, reference))[1])
    exp = trainer.collect(run, 0)
    assert calls == [True]  # only the reference model ran a log-prob forward
    with torch.no_grad():
        logp = forward(run, exp.rollout)  # (B, T) eval-mode policy forward
    mask = exp.rollout.response_mask
    want = ((logp - exp.ref_logp) * mask).sum(1).mean().item()
    assert want != 0 and abs(exp.kl - want) < 1e-4


def test_bf16_autocast_runs_on_cpu_close_to_float32() -> None:
    """The accelerator path (autocast) runs here too: `precision: bf16` on the CPU samples and
    takes log-probs in bf16 (different numbers from float32, close to them, float32 output);
    `auto` is float32 on the CPU; fp16 never autocasts a gradient pass."""
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "auto") is None and autocast_dtype(cpu, "bf16") is torch.bfloat16
    assert autocast_dtype(cpu, "fp16", training=True) is None
    policy = lora_policy(seed=3)
    r = sample(policy, PROMPTS, Sampling(6, do_sample=True, seed=2), n=2)
    fp32 = policy_logprobs(policy, r)
    policy.precision = "bf16"
    low = policy_logprobs(policy, r)
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert not torch.equal(low, fp32)  # autocast did run in bf16
    torch.testing.assert_close(low, fp32, atol=0.15, rtol=0)
    low.sum().backward()  # the gradient pass under autocast
    assert any(p.grad is not None and torch.isfinite(p.grad).all()
               for p in policy.model.parameters() if p.requires_grad)
    again = sample(policy, PROMPTS, Sampling(6, do_sample=True, seed=2), n=2)
    assert again.response_ids.shape[0] == r.response_ids.shape[0]
