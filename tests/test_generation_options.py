"""Generation options (top-k, repetition penalty, n-gram ban, min new tokens, stop strings,
several return sequences, GenerationConfig) in the aggregated decoder and the rollouts.

Independent reference: transformers' own ``model.generate`` of the one expert (PEFT adapter
active) with the same ``GenerationConfig``; the aggregated decode of that expert at weight 1
must give the same tokens. Sampled references draw from the global torch RNG seeded the same
way on both sides.
"""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig

from moalign.core.config import ConfigError
from moalign.emorl.decoding import generate, generate_ids, generate_naive_ids
from moalign.emorl.ensemble import Ensemble
from moalign.models import attach_lora, format_prompts, tiny_causal_lm, tiny_t5
from moalign.rollout import encode_prompts, sample
from moalign.sampling import Sampling

EXPERTS = ["alpha", "beta"]
PROMPTS = ["I feel like nobody at work listens to me", "Hi",
           "My sister and I argue every time we talk about our parents"]
N = 10


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=["causal", "t5"])
def ens(request) -> Ensemble:
    policy = tiny_causal_lm(seed=0) if request.param == "causal" else tiny_t5(seed=0)
    for name in EXPERTS:
        attach_lora(policy, name)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    policy.model.eval()
    return Ensemble(policy, EXPERTS)


def _hf(ens: Ensemble, adapter: str, config: GenerationConfig, seed: int | None = None,
        prompts: list[str] = PROMPTS) -> torch.Tensor:
    """Reference: the expert alone through transformers' generate with `config`."""
    ens.model.set_adapter(adapter)
    enc = encode_prompts(ens.policy, prompts)
    if seed is not None:
        torch.manual_seed(seed)
    with torch.inference_mode():
        out = ens.model.generate(**enc, generation_config=config, tokenizer=ens.tokenizer)
    return out[:, 1:] if ens.is_encoder_decoder else out[:, enc["input_ids"].shape[1]:]


def _ours(ens: Ensemble, k: int, sampling: Sampling, level: str = "states",
          seed: int | None = None, prompts: list[str] = PROMPTS) -> torch.Tensor:
    w = [1.0 if i == k else 0.0 for i in range(len(EXPERTS))]
    if seed is not None:
        torch.manual_seed(seed)
    return generate_ids(ens, prompts, w, level, sampling)


def _same(a: torch.Tensor, b: torch.Tensor, pad: int) -> bool:
    """Equal up to trailing pad columns (our loop stops once every row has finished)."""
    width = max(a.shape[1], b.shape[1])
    a = torch.nn.functional.pad(a, (0, width - a.shape[1]), value=pad)
    b = torch.nn.functional.pad(b, (0, width - b.shape[1]), value=pad)
    return torch.equal(a, b)


def _plant_eos(ens: Ensemble, monkeypatch: pytest.MonkeyPatch) -> int:
    """Make the 3rd token the expert emits for prompt 0 an EOS, so length options matter."""
    eos = int(_hf(ens, EXPERTS[0], GenerationConfig(max_new_tokens=N, do_sample=False))[0, 2])
    monkeypatch.setattr(ens.model.generation_config, "eos_token_id", eos)
    return eos


GREEDY_OPTIONS = [
    {"repetition_penalty": 1.8},
    {"no_repeat_ngram_size": 1},
    {"min_new_tokens": 6},
    {"repetition_penalty": 0.7, "no_repeat_ngram_size": 2, "min_new_tokens": 4},
]


@pytest.mark.parametrize(("options", "level"), [
    *[(o, "states") for o in GREEDY_OPTIONS],
    (GREEDY_OPTIONS[-1], "logits"), (GREEDY_OPTIONS[-1], "params")],
    ids=lambda o: ",".join(o) if isinstance(o, dict) else o)
def test_greedy_option_equals_generate_of_the_expert(ens, options, level, monkeypatch):
    _plant_eos(ens, monkeypatch)
    sampling = Sampling(N, **options)
    plain = _ours(ens, 0, Sampling.greedy(N), level)
    for k, adapter in enumerate(EXPERTS):
        ours = _ours(ens, k, sampling, level)
        ref = _hf(ens, adapter, sampling.to_generation_config())
        assert _same(ours, ref, ens.tokenizer.pad_token_id), (options, adapter)
    assert not torch.equal(_ours(ens, 0, sampling, level), plain), "the option changed nothing"


def test_repetition_penalty_ignores_the_prompt_padding(ens):
    """Left padding is no repetition (transformers skips it): make the padding token the one
    the short, padded prompt starts its answer with; a strong penalty must leave it chosen."""
    if ens.is_encoder_decoder:
        pytest.skip("encoder-decoders see no prompt padding in the decoder ids")
    first = _ours(ens, 0, Sampling.greedy(N))
    tok = int(first[1, 0])  # PROMPTS[1] is the shortest, so its row is padded
    old_pad = ens.tokenizer.pad_token
    ens.tokenizer.pad_token = ens.tokenizer.convert_ids_to_tokens(tok)
    try:
        assert tok not in ens.tokenizer(PROMPTS[1])["input_ids"]
        sampling = Sampling(N, repetition_penalty=50.0)
        ours = _ours(ens, 0, sampling)
        ref = _hf(ens, EXPERTS[0], sampling.to_generation_config())
    finally:
        ens.tokenizer.pad_token = old_pad
    assert int(ours[1, 0]) == tok
    assert _same(ours, ref, ens.policy.model.generation_config.pad_token_id)


def test_min_new_tokens_suppresses_the_early_eos(ens, monkeypatch):
    eos = _plant_eos(ens, monkeypatch)
    plain = _ours(ens, 0, Sampling.greedy(N))
    assert eos in plain[0, :3].tolist()
    forced = _ours(ens, 0, Sampling(N, min_new_tokens=6))
    assert eos not in forced[0, :6].tolist()


@pytest.mark.parametrize("level", ["states", "logits", "params"])
def test_stop_string_equals_generate_and_texts_end_before_it(ens, level):
    greedy = Sampling.greedy(N)
    first = _ours(ens, 0, greedy, level)
    stop = ens.tokenizer.decode(first[0, 3:5]).strip() or ens.tokenizer.decode(first[0, 3:5])
    sampling = Sampling(N, stop=(stop,))
    ours = _ours(ens, 0, sampling, level)
    ref = _hf(ens, EXPERTS[0], sampling.to_generation_config())
    pad = ens.tokenizer.pad_token_id
    assert _same(ours, ref, pad)
    assert ours.shape[1] < N or (ours[0, 5:] == pad).all(), "row 0 did not stop at the string"
    text = generate(ens, PROMPTS, [1.0, 0.0], level, sampling)[0]
    full = ens.tokenizer.decode(first[0], skip_special_tokens=True)
    assert stop not in text and full.startswith(text) and stop in full


@pytest.mark.parametrize("level", ["states", "logits", "params"])
def test_sampled_top_k_and_return_sequences_equal_generate(ens, level):
    sampling = Sampling(N, do_sample=True, temperature=0.7, top_k=5, top_p=0.9,
                        num_return_sequences=2, repetition_penalty=1.2, seed=11)
    ours = _ours(ens, 1, sampling, level)  # a generator seeded 11 draws as the global RNG
    ref = _hf(ens, EXPERTS[1], sampling.to_generation_config(), seed=11)
    assert ours.shape[0] == 2 * len(PROMPTS)
    assert _same(ours, ref, ens.tokenizer.pad_token_id)
    assert not torch.equal(ours[0], ours[1]), "the two samples of prompt 0 are identical"


def test_sampled_top_k_one_equals_greedy(ens):
    greedy = _ours(ens, 0, Sampling.greedy(N))
    for seed in (1, 2):
        top1 = Sampling(N, do_sample=True, temperature=1.7, top_k=1, seed=seed)
        assert torch.equal(_ours(ens, 0, top1), greedy)
        assert torch.equal(generate_naive_ids(ens, PROMPTS, [1.0, 0.0], sampling=top1), greedy)


def test_cached_decode_equals_naive_with_options(ens):
    sampling = Sampling(N, do_sample=True, top_k=7, repetition_penalty=1.3,
                        no_repeat_ngram_size=2, seed=4)
    w = [0.4, 0.9]
    assert torch.equal(generate_ids(ens, PROMPTS, w, sampling=sampling),
                       generate_naive_ids(ens, PROMPTS, w, sampling=sampling))


def test_rollout_stop_string_masks_and_texts(ens):
    ens.model.set_adapter(EXPERTS[0])
    plain = sample(ens.policy, PROMPTS[:1], Sampling.greedy(N))
    stop = ens.tokenizer.decode(plain.response_ids[0, 4:6])
    sampling = Sampling(N, stop=(stop,))
    r = sample(ens.policy, PROMPTS[:1], sampling)
    ref = _hf(ens, EXPERTS[0], sampling.to_generation_config(),
              prompts=format_prompts(ens.policy, PROMPTS[:1]))  # stops after the string
    assert ref.shape[1] < N
    assert torch.equal(r.response_ids, ref)
    assert int(r.response_mask[0].sum()) == ref.shape[1]
    assert stop not in r.responses[0] and plain.responses[0].startswith(r.responses[0])


def test_rollout_return_sequences_multiply_n(ens):
    sampling = Sampling(N, do_sample=True, top_k=20, num_return_sequences=2, seed=3)
    r = sample(ens.policy, PROMPTS[:2], sampling, n=2)
    assert r.prompts == [PROMPTS[0]] * 4 + [PROMPTS[1]] * 4
    assert len(r.responses) == 8 and r.response_ids.shape[0] == 8


# ------------------------------------------------------------------------------------------------
# the Sampling value and GenerationConfig


def test_generation_config_round_trip_and_defaults():
    s = Sampling(12, do_sample=True, temperature=0.5, top_p=0.8, top_k=3,
                 repetition_penalty=1.1, no_repeat_ngram_size=3, min_new_tokens=2,
                 stop=("\n\n", "User:"), num_return_sequences=4, seed=9)
    gc = s.to_generation_config()
    assert (gc.top_k, gc.stop_strings, gc.num_return_sequences) == (3, ["\n\n", "User:"], 4)
    assert Sampling.from_generation_config(gc, seed=9) == s
    # read as transformers reads it: sampling without top_k means top-k 50
    hf_like = Sampling.from_generation_config(GenerationConfig(do_sample=True))
    assert hf_like.top_k == 50 and hf_like.max_new_tokens == 64
    assert Sampling.from_generation_config(GenerationConfig(max_new_tokens=5)) == \
        Sampling.greedy(5)
    assert Sampling.greedy(8).to_generation_config().to_diff_dict().get("top_k") is None
    with pytest.raises(ConfigError, match="num_beams"):
        Sampling.from_generation_config(GenerationConfig(num_beams=4))


def test_defaults_keep_todays_generate_kwargs_and_key():
    assert Sampling.greedy(8).hf_kwargs() == {"max_new_tokens": 8, "do_sample": False}
    greedy = Sampling(8, top_k=5, temperature=0.3, seed=1, repetition_penalty=1.2)
    assert greedy.key() == Sampling(8, repetition_penalty=1.2)
    assert Sampling(stop="###").stop == ("###",)
    assert Sampling(stop=["a", "b"]) == Sampling(stop=("a", "b"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"top_k": -1}, "top_k >= 0"), ({"repetition_penalty": 0.0}, "repetition_penalty > 0"),
    ({"no_repeat_ngram_size": 1.5}, "no_repeat_ngram_size >= 0"),
    ({"min_new_tokens": -2}, "min_new_tokens >= 0"), ({"stop": ("",)}, "non-empty strings"),
    ({"num_return_sequences": 2}, "do_sample=true"),
    ({"num_return_sequences": 0, "do_sample": True}, "num_return_sequences >= 1")])
def test_new_options_are_checked(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Sampling(**kwargs)


def test_study_evaluation_passes_every_option_on():
    from moalign.core.config import from_dict
    from moalign.runs.stages import EvaluationSection, evaluation_sampling

    section = from_dict(EvaluationSection, {"top_k": 5, "repetition_penalty": 1.3, "stop": ["\n"],
                                            "no_repeat_ngram_size": 3, "min_new_tokens": 2})
    assert evaluation_sampling(section) == Sampling(
        64, True, top_k=5, repetition_penalty=1.3, no_repeat_ngram_size=3, min_new_tokens=2,
        stop=("\n",))
    with pytest.raises(ConfigError, match="top_k >= 0"):
        from_dict(EvaluationSection, {"top_k": -1})


def test_no_past_key_values_deprecation_warning(ens):
    """The KV cache goes by transformers' new name (`cache=`): no FutureWarning about
    `past_key_values` (removed in transformers 5.40) from decoding, sampling or training."""
    import warnings

    from moalign.rollout import policy_logprobs

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        generate_ids(ens, PROMPTS, [0.5, 0.5], sampling=Sampling.greedy(3))
        ens.model.set_adapter(EXPERTS[0])
        r = sample(ens.policy, PROMPTS[:2], Sampling(3, do_sample=True, seed=0), n=2)
        policy_logprobs(ens.policy, r)
    assert not [w for w in seen if "past_key_values" in str(w.message)]
