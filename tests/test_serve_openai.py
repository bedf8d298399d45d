"""The OpenAI-compatible routes through the official `openai` Python client, against a real
uvicorn server on 127.0.0.1 with an API key: model list, completion, chat, streaming, usage,
per-request objective weights (`extra_body`), stop strings, n, and refused keys."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
import torch
from helpers_objectives import make_tiny_ensemble
from serve_helpers import API_KEY, BEST, served
from transformers import AutoTokenizer

from moalign.emorl.decoding import generate_ids
from moalign.emorl.manifest import load_ensemble
from moalign.sampling import Sampling

MODEL = "run"
HI = [{"role": "user", "content": "I feel stressed about work."}]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_ensemble(tmp_path_factory.mktemp("openai") / MODEL, best_weights=BEST)


@pytest.fixture(scope="module")
def url(run_dir: Path):
    with served(run_dir, api_key=API_KEY, max_wait_ms=20) as base:
        yield base


@pytest.fixture(scope="module")
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0, timeout=60)


def native(url: str, prompt: str, weights: dict[str, float] | None = None) -> str:
    """The same generation through the native /generate route."""
    body = {"prompt": prompt, "max_new_tokens": 8, **({"weights": weights} if weights else {})}
    r = httpx.post(f"{url}/generate", json=body, timeout=60,
                   headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200, r.text
    return r.json()["response"]


def test_model_list(client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL] and models[0].owned_by == "moalign"


def test_completion_equals_the_library_decode(client: openai.OpenAI, run_dir: Path) -> None:
    out = client.completions.create(model=MODEL, prompt="Hello there", max_tokens=8,
                                    temperature=0)
    ens, _ = load_ensemble(run_dir, device="cpu")
    w = torch.tensor([BEST[n] for n in ens.objectives])
    ids = generate_ids(ens, ["Hello there"], w, "states", Sampling.greedy(8))
    assert out.choices[0].text == ens.tokenizer.decode(ids[0], skip_special_tokens=True)
    assert out.choices[0].finish_reason in ("length", "stop") and out.object == "text_completion"
    prompt_tokens = len(ens.tokenizer("Hello there")["input_ids"])
    assert out.usage.prompt_tokens == prompt_tokens
    assert 1 <= out.usage.completion_tokens <= 8
    assert out.usage.total_tokens == prompt_tokens + out.usage.completion_tokens


def test_chat_applies_the_template_and_matches_generate(client: openai.OpenAI, url: str,
                                                        run_dir: Path) -> None:
    out = client.chat.completions.create(model=MODEL, messages=HI, max_tokens=8, temperature=0)
    message = out.choices[0].message
    assert message.role == "assistant"
    assert message.content.strip() == native(url, HI[0]["content"])
    tok = AutoTokenizer.from_pretrained(run_dir / "base")
    rendered = tok.apply_chat_template(
        [{"role": "system", "content": "You are a helpful assistant."}, *HI], tokenize=False,
        add_generation_prompt=True)
    assert out.usage.prompt_tokens == len(tok(rendered)["input_ids"])
    own = client.chat.completions.create(  # a system message of its own replaces the default
        model=MODEL, messages=[{"role": "system", "content": "Answer in French."}, *HI],
        max_tokens=8, temperature=0)
    assert own.usage.prompt_tokens != out.usage.prompt_tokens


def test_streamed_text_equals_the_non_streamed_text(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=HI, max_tokens=12,
                                           temperature=0)
    pieces, usage = [], None
    for chunk in client.chat.completions.create(model=MODEL, messages=HI, max_tokens=12,
                                                temperature=0, stream=True,
                                                stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
    assert "".join(pieces) == whole.choices[0].message.content
    assert len(pieces) > 2  # real increments as tokens are decoded, not one final chunk
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens
    text = client.completions.create(model=MODEL, prompt="Once upon", max_tokens=12,
                                     temperature=0).choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="Once upon", max_tokens=12, temperature=0, stream=True))
    assert streamed == text


def test_weights_change_the_output(client: openai.OpenAI, url: str) -> None:
    texts = {}
    for name, weights in (("length", {"length": 1.0}), ("vowel", {"vowel": 1.0})):
        out = client.chat.completions.create(model=MODEL, messages=HI, max_tokens=8,
                                             temperature=0, extra_body={"weights": weights})
        texts[name] = out.choices[0].message.content
        assert texts[name].strip() == native(url, HI[0]["content"], weights)
    assert texts["length"] != texts["vowel"]
    logits = client.chat.completions.create(model=MODEL, messages=HI, max_tokens=8,
                                            temperature=0,
                                            extra_body={"weights": {"length": 1.0},
                                                        "level": "logits"})
    assert logits.choices[0].message.content == texts["length"]  # one expert: same decode


def test_stop_strings_n_and_seeds(client: openai.OpenAI) -> None:
    full = client.completions.create(model=MODEL, prompt="Hello", max_tokens=12,
                                     temperature=0).choices[0].text
    stop = full[len(full) // 2:len(full) // 2 + 2]
    cut = client.completions.create(model=MODEL, prompt="Hello", max_tokens=12, temperature=0,
                                    stop=[stop])
    assert cut.choices[0].text == full[:full.find(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="Hello", max_tokens=12, temperature=0, stop=[stop], stream=True))
    assert streamed == cut.choices[0].text
    kwargs = dict(model=MODEL, messages=HI, max_tokens=8, temperature=1.0, seed=5, n=2)
    first = client.chat.completions.create(**kwargs)
    again = client.chat.completions.create(**kwargs)
    assert [c.index for c in first.choices] == [0, 1]
    assert [c.message.content for c in first.choices] == [c.message.content
                                                         for c in again.choices]


def test_refused_requests_raise_the_clients_errors(url: str, client: openai.OpenAI) -> None:
    wrong = openai.OpenAI(base_url=f"{url}/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        wrong.models.list()
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model=MODEL, messages=HI)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=HI)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=HI,
                                       extra_body={"weights": {"length": 1e300}})
    assert info.value.code == "invalid_weights" and "is outside" in info.value.message


def test_generation_options_reach_the_decoder(client: openai.OpenAI) -> None:
    """top_k=1 sampling is greedy; min_tokens forces the full length; n rows per prompt."""
    greedy = client.chat.completions.create(model=MODEL, messages=HI, max_tokens=8,
                                            temperature=0).choices[0].message.content
    top1 = client.chat.completions.create(model=MODEL, messages=HI, max_tokens=8,
                                          temperature=1.5, seed=3, extra_body={"top_k": 1})
    assert top1.choices[0].message.content == greedy
    hot = client.chat.completions.create(model=MODEL, messages=HI, max_tokens=8,
                                         temperature=1.5, seed=3)
    assert hot.choices[0].message.content != greedy  # without top_k the sample differs
    full = client.completions.create(model=MODEL, prompt="Hi", max_tokens=6, temperature=0,
                                     extra_body={"min_tokens": 6})
    assert full.usage.completion_tokens == 6 and full.choices[0].finish_reason == "length"
    two = client.completions.create(model=MODEL, prompt=["Hi", "Yo"], max_tokens=4,
                                    temperature=0, n=2)
    assert [c.index for c in two.choices] == [0, 1, 2, 3]
    assert two.choices[0].text == two.choices[1].text  # greedy: n equal answers per prompt
