"""Config, atomic IO, model loading, LoRA adapters and rollouts on tiny real models."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from moalign.core.config import (
    ConfigError,
    load_config,
    parse_mapping,
    parse_overrides,
    parse_pairs,
    require,
    save_config,
)
from moalign.core.io import append_jsonl, atomic_dir, atomic_write_text, read_jsonl
from moalign.models import (
    attach_lora,
    format_prompts,
    load_adapter,
    load_policy,
    resolve_model,
    save_adapter,
    tiny_causal_lm,
    tiny_t5,
)
from moalign.rollout import (
    eos_mask,
    policy_logprobs,
    reference_logprobs,
    sample,
    token_logprobs,
)
from moalign.sampling import Sampling


@dataclasses.dataclass
class Inner:
    r: int = 8


@dataclasses.dataclass
class Demo:
    lr: float = 1e-4
    steps: int = 10
    name: str = "x"
    objectives: list[str] = dataclasses.field(default_factory=lambda: ["a"])
    weights: dict[str, float] = dataclasses.field(default_factory=dict)
    seed: int | None = None
    lora: Inner = dataclasses.field(default_factory=Inner)

    def validate(self) -> None:
        require(self.lr > 0, f"lr must be > 0, got {self.lr}; set lr=1e-4 for example")


def test_config_yaml_and_overrides(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("lr: 0.5\nobjectives: [a, b]\nlora: {r: 4}\n")
    cfg = load_config(Demo, cfg_file, ["steps=3", "lora.r=16", "weights=a=0.2,b=0.8",
                                       "seed=null"])
    assert (cfg.lr, cfg.steps, cfg.objectives, cfg.lora.r) == (0.5, 3, ["a", "b"], 16)
    assert cfg.weights == {"a": 0.2, "b": 0.8} and cfg.seed is None
    assert load_config(Demo, None, {"objectives": "x,y"}).objectives == ["x", "y"]
    out = save_config(cfg, tmp_path / "run")
    assert load_config(Demo, out) == cfg


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["lr=-1"], "lr must be > 0"), (["stepz=3"], "valid keys"), (["steps=abc"], "steps"),
     (["lora.q=1"], "lora.q"), (["steps"], "key=value")],
)
def test_config_errors_are_actionable(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(Demo, None, overrides)


def test_one_key_value_parser(tmp_path: Path) -> None:
    assert parse_overrides(["a.b=3", "c=null", "a.b=[x, y]", "d= e=f "]) == {
        "a.b": ["x", "y"], "c": None, "d": "e=f"}  # a later key wins; split at the first =
    assert parse_pairs(["x= runs/a ", "y=runs/b"], raw=True) == {"x": "runs/a", "y": "runs/b"}
    with pytest.raises(ConfigError, match="--expert 'x' is given twice"):
        parse_pairs(["x=a", "x=b"], "name=PATH", "--expert", raw=True, unique=True)
    for bad in (["x="], ["=a"], ["x"]):
        with pytest.raises(ConfigError, match="must look like name=PATH"):
            parse_pairs(bad, "name=PATH", raw=True)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("seed: 3\n")
    for nulls in (["seed=null"], {"seed": None}):  # null overrides reach the config
        assert load_config(Demo, cfg_file, nulls).seed is None


def test_config_missing_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Demo, "/nonexistent/x.yaml")
    with pytest.raises(ConfigError, match="name=value"):
        parse_mapping("a=1,b")


def test_atomic_writes_survive_failures(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "a.txt", "one")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d") as tmp:
        (tmp / "f").write_text("partial")
        raise RuntimeError("killed")
    assert not (tmp_path / "d").exists() and target.read_text() == "one"
    append_jsonl(tmp_path / "m.jsonl", {"a": 1})
    with (tmp_path / "m.jsonl").open("a") as f:
        f.write('{"a": 2')  # a kill in the middle of a line
    assert read_jsonl(tmp_path / "m.jsonl") == [{"a": 1}]


def test_resolve_model_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model("./no/such/model")
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_model(str(tmp_path))


@pytest.mark.parametrize("factory", [tiny_causal_lm, tiny_t5])
def test_lora_roundtrip_and_rollout(factory, tmp_path: Path) -> None:
    policy = attach_lora(factory(), "expert")
    for n, p in policy.model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)
    r = sample(policy, ["I feel tired all the time.", "Work is hard"],
               Sampling(5, do_sample=True), n=2)
    assert len(r) == 4 and r.response_ids.shape == r.response_mask.shape
    assert r.prompts[0] == r.prompts[1]
    lp = policy_logprobs(policy, r)
    ref = reference_logprobs(policy, r)
    assert lp.requires_grad and not torch.allclose(lp, ref)
    save_adapter(policy, "expert", tmp_path / "adapter")
    other = load_adapter(factory(), tmp_path / "adapter", "expert")
    assert torch.allclose(policy_logprobs(other, r), lp.detach(), atol=1e-5)


def test_eos_mask_includes_first_eos_only() -> None:
    ids = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 2, 2, 2]])
    assert eos_mask(ids, {2}).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]


def test_token_logprobs_match_manual_values_in_float32() -> None:
    """log π(y_t | y_<t) (EMORL §5.1, SCST Σ_t log π): exact values, 0 where masked, float32
    from bf16 logits, and logits / temperature."""
    logits = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [5.0, 1.0, 1.0]]])  # (1, 3, 3)
    ids, mask = torch.tensor([[2, 0, 1]]), torch.tensor([[1, 1, 0]])
    lse = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    expected = torch.tensor([[3 - lse, -math.log(3.0), 0.0]])
    torch.testing.assert_close(token_logprobs(logits, ids, mask), expected)
    torch.testing.assert_close(token_logprobs(logits * 2, ids, mask, temperature=2.0), expected)
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 7).to(torch.bfloat16)  # (B, T, V)
    ids = torch.randint(0, 7, (2, 4))
    out = token_logprobs(logits, ids, torch.ones(2, 4))
    assert out.dtype == torch.float32
    ref = torch.log_softmax(logits.float(), -1).gather(-1, ids[..., None]).squeeze(-1)
    torch.testing.assert_close(out, ref)


def test_chat_formatting_uses_template() -> None:
    policy = tiny_causal_lm()
    text = format_prompts(policy, ["hello"], system="Be kind.")[0]
    assert "Be kind." in text and "hello" in text and text.rstrip().endswith("assistant")
    assert format_prompts(tiny_t5(), ["hello"]) == ["hello"]


@pytest.mark.slow
def test_bundled_smollm2_generates_coherent_text() -> None:
    policy = load_policy("smollm2-135m-instruct", device="cpu")
    r = sample(policy, ["What is the capital of France?"], Sampling.greedy(16))
    assert "Paris" in r.responses[0]
