"""Decode-time aggregation of LoRA experts (EMORL §4.1 Eq. 2, Appendix 11 Eq. 3).

Tiny random models with three LoRA experts whose B matrices are random (seeded), so experts differ
and outputs change with the weights. References are independent: PEFT/HF `generate` with one
adapter active, an explicitly merged model (θ0 + Σ w_i·ΔW_i), and the naive uncached loop.
"""

from __future__ import annotations

import copy

import pytest
import torch

from moalign.core.config import ConfigError
from moalign.core.errors import ObjectiveError
from moalign.emorl import decoding as agg
from moalign.emorl import lora_batching
from moalign.emorl.decoding import aggregate_logits, generate, generate_ids, generate_naive_ids
from moalign.emorl.ensemble import Ensemble, check_weights, parse_weights
from moalign.emorl.lora_batching import lora_layers
from moalign.emorl.soup import soup_adapter
from moalign.models import attach_lora, save_adapter, tiny_causal_lm, tiny_t5
from moalign.rollout import encode_prompts, pad_token_id
from moalign.sampling import Sampling

EXPERTS = ["reflection", "empathy", "fluency"]
PROMPTS = [
    "I feel like nobody at work listens to me",
    "Hi",
    "My sister and I argue every single time we talk on the phone about our parents",
]
N = 12
GREEDY = Sampling.greedy(N)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine OpenMP barriers make
    each small matmul wait for descheduled threads (×50 slower); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _randomise_lora_b(policy, seed: int = 1234, scale: float = 0.5) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)


def _build(kind: str):
    policy = tiny_causal_lm(seed=0) if kind == "causal" else tiny_t5(seed=0)
    for name in EXPERTS:
        attach_lora(policy, name)
    _randomise_lora_b(policy)
    policy.model.eval()
    return policy


@pytest.fixture(scope="module", params=["causal", "t5"])
def ens(request) -> Ensemble:
    return Ensemble(_build(request.param), EXPERTS)


def _own_generate(ens: Ensemble, adapter: str, prompts=PROMPTS, n=N, **kw) -> torch.Tensor:
    """Reference: the expert alone, PEFT with that adapter active, ordinary HF generate."""
    model = ens.model
    model.set_adapter(adapter)
    enc = encode_prompts(ens.policy, prompts)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=n, do_sample=False, **kw)
    return out[:, 1:] if ens.is_encoder_decoder else out[:, enc["input_ids"].shape[1]:]


def _plant_eos(ens: Ensemble, monkeypatch) -> int:
    """Make a token the first expert emits early in row 0 the EOS, so rows stop at different
    steps (random tiny models practically never emit the real EOS)."""
    first = _own_generate(ens, EXPERTS[0])
    eos = int(first[0, 3])
    monkeypatch.setattr(ens.model.generation_config, "eos_token_id", eos)
    return eos


def _one_hot(k: int, n: int = 3) -> list[float]:
    return [1.0 if i == k else 0.0 for i in range(n)]


def _rows(ids: torch.Tensor, eos: int, pad: int) -> list[list[int]]:
    """Each row up to and including its first EOS (trailing pad removed)."""
    out = []
    for row in ids.tolist():
        cut = row.index(eos) + 1 if eos in row else len(row)
        out.append(row[:cut])
        assert all(t == pad for t in row[cut:])
    return out


# ------------------------------------------------------------------------------------------------
# exactness against independent references


@pytest.mark.parametrize("level,space", [("states", "raw"), ("logits", "raw"),
                                         ("logits", "probs"), ("params", "raw")])
def test_one_expert_at_weight_one_equals_its_own_generate(ens, level, space, monkeypatch):
    eos = _plant_eos(ens, monkeypatch)
    stopped_early = False
    for k, adapter in enumerate(EXPERTS):
        ref = _own_generate(ens, adapter)
        ours = generate_ids(ens, PROMPTS, _one_hot(k), level=level, sampling=GREEDY,
                            logits_space=space)
        assert torch.equal(ours, ref), (level, adapter)
        stopped_early |= bool((ref[:, :-1] == eos).any())
    assert stopped_early, "per-sequence EOS was not exercised"


def test_experts_differ_and_weights_change_the_output(ens):
    outs = [generate_ids(ens, PROMPTS, w, sampling=GREEDY)
            for w in (_one_hot(0), _one_hot(1), _one_hot(2), [0.2, 0.5, 0.3])]
    for i in range(len(outs)):
        for j in range(i + 1, len(outs)):
            assert not torch.equal(outs[i], outs[j]), (i, j)


@pytest.mark.parametrize("level,space", [("states", "raw"), ("logits", "raw"),
                                         ("logits", "probs")])
def test_cached_decode_equals_naive_reference(ens, level, space, monkeypatch):
    _plant_eos(ens, monkeypatch)
    w = [0.5, 0.3, 0.9]
    ours = generate_ids(ens, PROMPTS, w, level=level, sampling=GREEDY, logits_space=space)
    naive = generate_naive_ids(ens, PROMPTS, w, level=level, sampling=GREEDY, logits_space=space)
    assert torch.equal(ours, naive)


def test_peft_mixed_batch_fallback_equals_fast_path(ens, monkeypatch):
    w = torch.tensor([[0.5, 0.3, 0.9], [1.0, 0.0, 0.2], [0.1, 0.1, 0.1]])
    fast = generate_ids(ens, PROMPTS, w, sampling=GREEDY)
    monkeypatch.setattr(lora_batching, "_fast_path_ok", lambda *args: False)
    assert torch.equal(generate_ids(ens, PROMPTS, w, sampling=GREEDY), fast)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("level,space", [("states", "raw"), ("logits", "probs")])
def test_rows_skip_their_zero_weight_experts_exactly(ens, level, space, fast, monkeypatch):
    """Zero weights per row: each expert decodes only its non-zero rows (blocks of different
    sizes); the naive loop runs every expert on every row, and gives the same tokens."""
    _plant_eos(ens, monkeypatch)
    if not fast:
        monkeypatch.setattr(lora_batching, "_fast_path_ok", lambda *args: False)
    w = torch.tensor([[0.0, 0.7, 0.3], [1.0, 0.0, 0.0], [0.2, 0.5, 0.0]])
    ours = generate_ids(ens, PROMPTS, w, level=level, sampling=GREEDY, logits_space=space)
    naive = generate_naive_ids(ens, PROMPTS, w, level=level, sampling=GREEDY, logits_space=space)
    assert torch.equal(ours, naive)


def test_soup_adapter_is_exactly_the_weighted_sum_of_deltas(ens):
    model, w = ens.model, [0.7, 0.2, 0.5]
    name = soup_adapter(model, EXPERTS, w)
    try:
        checked = 0
        for m in lora_layers(model):
            if name not in m.lora_A:
                continue
            expected = sum(wi * m.get_delta_weight(a) for wi, a in zip(w, EXPERTS, strict=True))
            torch.testing.assert_close(m.get_delta_weight(name), expected, rtol=1e-5, atol=1e-6)
            checked += 1
        assert checked > 0
    finally:
        model.delete_adapter(name)
    assert set(model.peft_config) == set(EXPERTS)


def _merged_reference(ens: Ensemble, w: list[float], n: int = N) -> torch.Tensor:
    """θ = θ0 + Σ_i w_i·ΔW_i written into a copy of the base weights, then plain generate."""
    ref = copy.deepcopy(ens.model)
    with torch.no_grad():
        for m in lora_layers(ref):
            delta = sum(wi * m.get_delta_weight(a) for wi, a in zip(w, EXPERTS, strict=True))
            m.get_base_layer().weight += delta
    plain = ref.unload()
    enc = encode_prompts(ens.policy, PROMPTS)
    with torch.inference_mode():
        out = plain.generate(**enc, max_new_tokens=n, do_sample=False)
    return out[:, 1:] if ens.is_encoder_decoder else out[:, enc["input_ids"].shape[1]:]


@pytest.mark.parametrize("w", [[1.0, 0.0, 0.0], [0.6, 0.3, 0.8]])
def test_params_equals_explicitly_merged_model(ens, w):
    ours = generate_ids(ens, PROMPTS, w, level="params", sampling=GREEDY)
    assert torch.equal(ours, _merged_reference(ens, w))
    assert set(ens.model.peft_config) == set(EXPERTS)  # temporary adapters deleted


# ------------------------------------------------------------------------------------------------
# invariances and per-sequence weights


@pytest.mark.parametrize("level", ["states", "logits", "params"])
def test_permuting_experts_with_their_weights_changes_nothing(ens, level):
    w = [0.6, 0.3, 0.8]
    perm = [2, 0, 1]
    permuted = Ensemble(ens.policy, [EXPERTS[i] for i in perm])
    a = generate_ids(ens, PROMPTS, w, level=level, sampling=GREEDY)
    b = generate_ids(permuted, PROMPTS, [w[i] for i in perm], level=level, sampling=GREEDY)
    assert torch.equal(a, b)


def test_scaling_all_weights_keeps_greedy_states_output(ens):
    w = torch.tensor([0.25, 0.5, 0.125])  # powers of two: exact scaling
    a = generate_ids(ens, PROMPTS, w, sampling=GREEDY)
    assert torch.equal(a, generate_ids(ens, PROMPTS, 2 * w, sampling=GREEDY))
    assert generate(ens, PROMPTS, w, sampling=GREEDY) == \
        generate(ens, PROMPTS, 2 * w, sampling=GREEDY)


@pytest.mark.parametrize("level", ["states", "logits", "params"])
def test_per_sequence_weights_equal_separate_runs(ens, level, monkeypatch):
    eos = _plant_eos(ens, monkeypatch)
    pad = pad_token_id(ens.policy)
    rows = torch.tensor([[0.6, 0.3, 0.8], [0.0, 1.0, 0.0], [0.2, 0.2, 1.0]])
    batched = _rows(generate_ids(ens, PROMPTS, rows, level=level, sampling=GREEDY), eos, pad)
    for b in range(len(PROMPTS)):
        alone = generate_ids(ens, PROMPTS, rows[b], level=level, sampling=GREEDY)
        assert batched[b] == _rows(alone, eos, pad)[b], (level, b)


def test_weight_points_times_prompts_in_one_batch(ens):
    """The search's use: repeat prompts × points, (B·P, K) weights, one generation."""
    points = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    prompts = PROMPTS * len(points)
    weights = points.repeat_interleave(len(PROMPTS), dim=0)
    texts = generate(ens, prompts, weights, sampling=GREEDY)
    for p, point in enumerate(points):
        assert texts[p * len(PROMPTS):(p + 1) * len(PROMPTS)] == \
            generate(ens, PROMPTS, point, sampling=GREEDY)


def test_shared_token_histories_run_once_and_split_exactly(ens):
    """Nearby weight points greedily share their first tokens: each expert runs every distinct
    (prompt, tokens so far) once and splits a row when its points diverge. Reference: the naive
    uncached loop for each point alone."""
    points = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.5, 0.5, 0.0],
                           [0.45, 0.55, 0.0], [0.0, 1.0, 0.0], [0.3, 0.3, 0.4]])
    weights = points.repeat_interleave(len(PROMPTS), dim=0)  # (P·B, K)
    rows_run: list[int] = []
    decoder = agg.base_model(ens.model).get_decoder()
    hook = decoder.register_forward_pre_hook(
        lambda m, a, kw: rows_run.append(kw["input_ids"].shape[0]), with_kwargs=True)
    try:
        ids = generate_ids(ens, PROMPTS * len(points), weights, sampling=GREEDY)
    finally:
        hook.remove()
    for p, point in enumerate(points):
        alone = generate_naive_ids(ens, PROMPTS, point, sampling=GREEDY)
        assert torch.equal(ids[p * len(PROMPTS):(p + 1) * len(PROMPTS)], alone), p
    batch_rows = int((weights > 0).sum())  # (expert, sequence) pairs with a non-zero weight
    if not ens.is_encoder_decoder:  # causal experts: distinct histories only
        assert rows_run[0] == 3 * len(PROMPTS)  # each expert prefills each prompt once
        assert rows_run[1] < batch_rows and len(set(rows_run[1:])) > 1  # shared, then split
        assert max(rows_run) <= batch_rows


# ------------------------------------------------------------------------------------------------
# sampling


@pytest.mark.parametrize("level", ["states", "logits", "params"])
def test_sampling_with_a_fixed_seed_is_reproducible(ens, level):
    sampled = Sampling(N, do_sample=True, temperature=0.9, top_p=0.95)
    w = [0.6, 0.3, 0.8]
    a = generate_ids(ens, PROMPTS, w, level, sampled.with_seed(7))
    assert torch.equal(a, generate_ids(ens, PROMPTS, w, level, sampled.with_seed(7)))
    assert not torch.equal(a, generate_ids(ens, PROMPTS, w, level, sampled.with_seed(8)))
    if level != "params":
        g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
        assert torch.equal(generate_ids(ens, PROMPTS, w, level, sampled, generator=g1),
                           generate_ids(ens, PROMPTS, w, level, sampled, generator=g2))


def test_aggregate_logits_levels_on_hand_tensors():
    """states / logits-raw / logits-probs against direct computations on a linear head."""
    torch.manual_seed(0)
    head = torch.nn.Linear(4, 6, bias=False)
    h = torch.randn(2, 3, 4)  # (K=2, B=3, H=4)
    w = torch.tensor([[1.0, 0.0], [0.25, 0.75], [2.0, 2.0]])  # (B, K)
    with torch.no_grad():
        states = aggregate_logits(head, h, w, "states")
        raw = aggregate_logits(head, h, w, "logits")
        mix = aggregate_logits(head, h, w, "logits", "probs")
        per_expert = [head(h[k]) for k in range(2)]  # (B, V) each
    expected_states = head(w[:, :1] * h[0] + w[:, 1:] * h[1])
    assert torch.allclose(states, expected_states, atol=1e-6)
    assert torch.allclose(raw, states, atol=1e-5)  # linear head: logits level == states level
    # Σ w·log p differs from Σ w·logits by a per-row constant: the same distribution again
    logp = sum(w[:, k:k + 1] * torch.log_softmax(per_expert[k], -1) for k in range(2))
    assert torch.allclose(torch.softmax(logp, -1), torch.softmax(raw, -1), atol=1e-5)
    # probs: the log of the normalised mixture of the experts' distributions
    p = [torch.softmax(x, -1) for x in per_expert]
    expected_mix = (w[:, :1] * p[0] + w[:, 1:] * p[1]) / w.sum(-1, keepdim=True)
    assert torch.allclose(mix.exp(), expected_mix, atol=1e-6)
    assert torch.allclose(mix[0], torch.log_softmax(per_expert[0][0], -1), atol=1e-6)
    assert not torch.allclose(torch.softmax(mix, -1), torch.softmax(raw, -1), atol=1e-3)


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    nucleus = Sampling(do_sample=True, top_p=0.7)
    seen = {int(agg.choose_tokens(logits, nucleus, torch.Generator().manual_seed(s)))
            for s in range(200)}
    assert seen == {0, 1}
    assert int(agg.choose_tokens(logits, Sampling.greedy(), None)) == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_new_tokens": 0}, "max_new_tokens >= 1"), ({"temperature": 0.0}, "temperature > 0"),
    ({"temperature": float("nan")}, "temperature > 0"), ({"top_p": 0.0}, "0 < top_p <= 1"),
    ({"top_p": 1.5}, "0 < top_p <= 1")])
def test_sampling_settings_are_checked_once(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Sampling(**kwargs)


def test_sampling_key_and_generate_kwargs():
    greedy = Sampling(8, temperature=0.7, top_p=0.5, seed=3)  # greedy: only the length counts
    assert greedy.key() == Sampling.greedy(8) and greedy.key() != Sampling.greedy(9)
    assert greedy.hf_kwargs() == {"max_new_tokens": 8, "do_sample": False}
    sampled = Sampling(8, do_sample=True, temperature=0.7, top_p=0.5, seed=3)
    assert sampled.key() == sampled and sampled.with_seed(4).seed == 4
    assert sampled.hf_kwargs() == {"max_new_tokens": 8, "do_sample": True, "temperature": 0.7,
                                   "top_p": 0.5, "top_k": 0}


def test_cached_sampling_equals_naive_sampling(ens):
    sampled = Sampling(N, do_sample=True, temperature=0.8, top_p=0.9, seed=3)
    w = [0.6, 0.3, 0.8]
    assert torch.equal(generate_ids(ens, PROMPTS, w, sampling=sampled),
                       generate_naive_ids(ens, PROMPTS, w, sampling=sampled))


# ------------------------------------------------------------------------------------------------
# weights: validation and parsing


@pytest.mark.parametrize("bad", [[1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.5, -0.1, 0.2],
                                 [float("nan"), 0.1, 0.1], [0.0, 0.0, 0.0],
                                 [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.1, 0.1, 0.1]],
                                 [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "abc"])
def test_invalid_weights_raise_a_clear_error(bad):
    with pytest.raises(ConfigError):
        check_weights(bad, 3, batch=3)


def test_invalid_weights_are_rejected_by_generate(ens):
    with pytest.raises(ValueError, match="all zero"):
        generate(ens, PROMPTS, [0.0, 0.0, 0.0], sampling=Sampling.greedy(2))
    with pytest.raises(ValueError, match="negative"):
        generate(ens, PROMPTS, [0.0, -1.0, 1.0], sampling=Sampling.greedy(2))
    with pytest.raises(ValueError, match="not one of"):
        generate(ens, PROMPTS, [1.0, 0.0, 0.0], level="hidden", sampling=Sampling.greedy(2))


def test_parse_weights_forms():
    names = ["reflection", "empathy", "fluency"]
    expected = torch.tensor([0.8, 0.5, 0.0])
    assert torch.equal(parse_weights("reflection=0.8,empathy=0.5", names), expected)
    assert torch.equal(parse_weights({"empathy": 0.5, "reflection": 0.8}, names), expected)
    assert torch.equal(parse_weights([0.8, 0.5, 0], names), expected)
    assert torch.equal(parse_weights("0.8, 0.5, 0", names), expected)
    with pytest.raises(ObjectiveError, match="known: \\['reflection', 'empathy', 'fluency'\\]"):
        parse_weights("reflection=0.8,humour=0.5", names)
    with pytest.raises(ConfigError):
        parse_weights("reflection=high", names)
    with pytest.raises(ConfigError):
        parse_weights({"reflection": 0.0}, names)


def test_generate_accepts_named_weights(ens):
    assert generate(ens, PROMPTS, "empathy=1", sampling=Sampling.greedy(4)) == \
        generate(ens, PROMPTS, [0, 1, 0], sampling=Sampling.greedy(4))
    with pytest.raises(ObjectiveError):
        generate(ens, PROMPTS, {"safety": 1.0}, sampling=Sampling.greedy(4))


# ------------------------------------------------------------------------------------------------
# ensemble management


def test_from_adapters_and_add_expert_leave_existing_experts_untouched(tmp_path):
    src = _build("causal")
    paths = {name: save_adapter(src, name, tmp_path / name) for name in EXPERTS}
    policy = tiny_causal_lm(seed=0)
    ens = Ensemble.from_adapters(policy, {n: paths[n] for n in EXPERTS[:2]})
    assert ens.objectives == EXPERTS[:2]
    before = {k: v.clone() for k, v in ens.model.state_dict().items() if "lora_" in k}
    ens.add_expert(EXPERTS[2], paths[EXPERTS[2]])
    assert ens.objectives == EXPERTS
    after = ens.model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    w = [0.6, 0.3, 0.8]
    assert torch.equal(generate_ids(ens, PROMPTS, w, sampling=GREEDY),
                       generate_ids(Ensemble(src, EXPERTS), PROMPTS, w, sampling=GREEDY))
    with pytest.raises(ConfigError, match="already"):
        ens.add_expert(EXPERTS[0], paths[EXPERTS[0]])
    with pytest.raises(ConfigError, match="no LoRA adapter"):
        Ensemble(policy, ["missing"])
    for bad in ("lora", "a", "ora_"):  # would collide with PEFT's `lora_` key prefix
        with pytest.raises(ConfigError, match="'lora_' prefix"):
            ens.add_expert("x", paths[EXPERTS[0]], adapter_name=bad)
    with pytest.raises(ConfigError, match="must match"):
        ens.add_expert("x", paths[EXPERTS[0]], adapter_name="bad name")
    assert ens.objectives == EXPERTS


def test_generation_restores_training_mode_and_adapters(ens):
    model = ens.model
    model.train()
    try:
        generate(ens, PROMPTS, [0.6, 0.3, 0.8], sampling=Sampling.greedy(3))
        generate(ens, PROMPTS, [0.6, 0.3, 0.8], level="params", sampling=Sampling.greedy(3))
        assert model.training
        assert set(model.peft_config) == set(EXPERTS)
    finally:
        model.eval()
