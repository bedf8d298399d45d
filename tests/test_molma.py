"""MOLMA (issue "MOLMA"): Bradley-Terry reward models, joint training with APA + per-objective
critics + Aligned-MTL, the SO baselines, resume, and the model comparison — on tiny models.

The pure maths (LOGIT+WHITEN, GAE, APA, Aligned-MTL, ...) is tested in test_losses.py and
test_gradients.py; here we test that the trainers wire it together correctly.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from moalign.core.io import append_jsonl, read_jsonl
from moalign.molma.config import MolmaConfig
from moalign.molma.trainer import train_molma, training_rewards
from moalign.rewards.reward_models import RMConfig, train_reward_model

# ----------------------------------------------------------------------------- objectives
# Two objectives a tiny random policy can learn quickly. Both look at the response's ASCII
# letters: `early` = share of letters in a..m, `vowel` = share of vowels.


def _letters(text: str) -> list[str]:
    return [c for c in text.lower() if c.isascii() and c.isalpha()]


def early(prompts: list[str], responses: list[str]) -> list[float]:
    return [sum(c <= "m" for c in L) / len(L) if L else 0.0 for L in map(_letters, responses)]


def vowel(prompts: list[str], responses: list[str]) -> list[float]:
    return [sum(c in "aeiou" for c in L) / len(L) if L else 0.0 for L in map(_letters, responses)]


OBJECTIVES = [{"kind": "python", "function": f"{__name__}:{f}", "name": f}
              for f in ("early", "vowel")]
PLANT = 4.0  # strength of the planted embedding directions (see tiny_policy_dir)
PROMPTS = [[f"help question number {i}" for i in range(12)],
           [f"safety question number {i}" for i in range(12)]]


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny matmuls: one thread avoids OpenMP oversubscription on busy CI machines."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_policy_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random Llama (real SmolLM2 tokenizer) in which the two objectives are learnable.

    With random embeddings, a 32-dim LoRA policy over 49k tokens can barely move any text
    statistic. We plant two directions in the (tied) embeddings: one marks tokens whose letters
    are mostly a..m, the other tokens with >= 40 % vowels, so the policy can raise both rewards by
    turning its final hidden state towards them.
    """
    from moalign.models import tiny_causal_lm

    policy = tiny_causal_lm(seed=0)
    strings = policy.tokenizer.convert_ids_to_tokens(list(range(policy.model.config.vocab_size)))

    def sign(share: float, threshold: float, letters: list[str]) -> float:
        return 1.0 if letters and share >= threshold else -1.0

    f_early = torch.tensor([sign(early([], [s])[0], 0.5, _letters(s)) for s in strings])
    f_vowel = torch.tensor([sign(vowel([], [s])[0], 0.4, _letters(s)) for s in strings])
    H = policy.model.config.hidden_size
    u = torch.linalg.qr(torch.randn(H, 2, generator=torch.Generator().manual_seed(1)))[0].T
    with torch.no_grad():
        policy.model.get_input_embeddings().weight += \
            PLANT * (f_early[:, None] * u[0] + f_vowel[:, None] * u[1]) / H**0.5
    out = tmp_path_factory.mktemp("tiny") / "policy"
    policy.model.save_pretrained(out)
    policy.tokenizer.save_pretrained(out)
    return str(out)


def _cfg(policy: str, out: Path, **kw: Any) -> MolmaConfig:
    base: dict[str, Any] = dict(
        policy=policy, objectives=OBJECTIVES, prompts=PROMPTS, memory=4, minibatch=2,
        max_new_tokens=4, iterations=1, lr=5e-3, apa_lambda=0.1, device="cpu", progress=False,
        out_dir=str(out), help_objective="early", safe_objective="vowel")
    base.update(kw)
    return MolmaConfig(**base)


# ----------------------------------------------------------------------------- reward models


def _marker_pairs(path: Path, n: int = 40) -> Path:
    """Separable preferences: the chosen response contains 'thanks', the rejected one does not."""
    rng = random.Random(0)
    topics = ["the weather", "a recipe", "my homework", "a book", "the train", "my garden"]
    starts = ["Sure, here is an answer", "I can help with that", "Here are some thoughts"]
    rows = []
    for i in range(n):
        body = rng.choice(starts)
        rows.append({"prompt": f"Tell me about {rng.choice(topics)} ({i})",
                     "chosen": f"{body}. Thanks for asking!", "rejected": f"{body}."})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_reward_model_learns_separable_preferences(tmp_path: Path) -> None:
    from moalign.rewards.heads import read_meta
    from moalign.rewards.scorers import build_scorer

    data = _marker_pairs(tmp_path / "prefs.jsonl")
    res = train_reward_model(RMConfig(data=str(data), out=str(tmp_path / "rm"), device="cpu"))
    assert res["val_accuracy"] >= 0.9 and res["n_val"] > 0
    assert read_meta(tmp_path / "rm")["val_accuracy"] == res["val_accuracy"]
    scorer = build_scorer({"kind": "reward_model", "path": str(tmp_path / "rm"), "device": "cpu"})
    s = scorer.score(["Tell me about a lamp"] * 2, ["Sure. Thanks for asking!", "Sure."])
    assert ((s > 0) & (s < 1)).all() and s[0] > s[1]


def test_cli_train_rm(tmp_path: Path) -> None:
    from moalign.cli import app

    data = _marker_pairs(tmp_path / "prefs.jsonl", n=20)
    result = CliRunner().invoke(app, ["train-rm", "--data", str(data), f"out={tmp_path / 'rm'}",
                                      "device=cpu"])
    assert result.exit_code == 0, result.output
    assert "held-out pairwise accuracy" in result.output
    assert (tmp_path / "rm" / "train_rm.yaml").is_file()


# ----------------------------------------------------------------------------- joint training


def test_molma_raises_both_rewards(tiny_policy_dir: str, tmp_path: Path) -> None:
    # with these settings (test lr 5e-3, APA λ 0.1) seeds 0-4 all gain >= 0.05 on both
    cfg = _cfg(tiny_policy_dir, tmp_path / "run", iterations=10, memory=8, minibatch=4,
               max_new_tokens=6)
    summary = train_molma(cfg)
    recs = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(recs) == 10 * 2 and summary["steps"] == 20
    per_iter = {r["iteration"]: r for r in recs}
    for name in ("early", "vowel"):
        curve = [per_iter[i][f"reward/{name}"] for i in range(10)]
        assert sum(curve[-3:]) / 3 > sum(curve[:3]) / 3 + 0.02, (name, curve)
    for key in ("kl", "grad_cosine", "cond_before", "cond_after", "apa/early", "value/vowel"):
        assert key in recs[-1]
    assert recs[-1]["cond_after"] == pytest.approx(1.0, abs=1e-6)
    for f in ("config.yaml", "summary.json", "adapter/adapter_config.json",
              "value_adapter/adapter_config.json", "value_head.safetensors"):
        assert (tmp_path / "run" / f).exists(), f


def test_resume_equals_uninterrupted(tiny_policy_dir: str, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    full = train_molma(_cfg(tiny_policy_dir, tmp_path / "full", iterations=3))
    train_molma(_cfg(tiny_policy_dir, tmp_path / "cut", iterations=2))
    # a step logged after the checkpoint (a killed run's tail): resuming must drop it
    append_jsonl(tmp_path / "cut" / "metrics.jsonl", {"step": 5, "lost": 1.0})
    resumed = train_molma(_cfg(tiny_policy_dir, tmp_path / "cut", iterations=3), resume=True)
    assert resumed["steps"] == full["steps"] == 6

    def strip(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "time"} for r in recs]

    assert strip(read_jsonl(tmp_path / "cut" / "metrics.jsonl")) == \
        strip(read_jsonl(tmp_path / "full" / "metrics.jsonl"))
    for f in ("adapter/adapter_model.safetensors", "value_adapter/adapter_model.safetensors",
              "value_head.safetensors"):
        a, b = load_file(tmp_path / "full" / f), load_file(tmp_path / "cut" / f)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f


@pytest.mark.parametrize(("mode", "combiner", "critic"), [
    ("so", "aligned_mtl", "lora"), ("so_weighted", "aligned_mtl", "head"),
    ("so_piecewise", "aligned_mtl", "head"), ("molma", "pcgrad", "head"),
    ("molma", "weighted_sum", "head"),
])
def test_baselines_and_combiners_finish(tiny_policy_dir: str, tmp_path: Path, mode: str,
                                        combiner: str, critic: str) -> None:
    from safetensors.torch import load_file

    summary = train_molma(_cfg(tiny_policy_dir, tmp_path, mode=mode, combiner=combiner,
                               critic=critic, so_objective="vowel"))
    signals = {"so": ["vowel"], "molma": ["early", "vowel"]}.get(mode, [mode])
    assert summary["signals"] == signals and summary["steps"] == 2
    assert load_file(tmp_path / "value_head.safetensors")["weight"].shape[0] == len(signals)
    rec = read_jsonl(tmp_path / "metrics.jsonl")[-1]
    assert {"reward/early", "reward/vowel", f"apa/{signals[0]}", "cond_before"} <= rec.keys()
    assert ("grad_cosine" in rec) == (mode == "molma")


def test_training_rewards_dispatch() -> None:
    raw = torch.tensor([[0.9, 0.2], [0.3, 0.8], [0.6, 0.7]])  # columns: help, safe
    cfg = MolmaConfig(objectives=["help", "safe"], help_objective="help", safe_objective="safe",
                      delta=0.5)
    molma = training_rewards(cfg, raw, ["help", "safe"])
    assert molma.shape == (3, 2) and torch.allclose(molma.mean(0), torch.zeros(2), atol=1e-6)
    piece = training_rewards(dataclasses.replace(cfg, mode="so_piecewise"), raw,
                             ["help", "safe"])
    # r_p = (0.2 [unsafe -> r_safe], 0.3, 0.6): the order of r_p is kept after LOGIT+WHITEN
    assert piece.shape == (3, 1) and piece[:, 0].argsort().tolist() == [0, 1, 2]
    weighted = training_rewards(dataclasses.replace(cfg, mode="so_weighted"), raw,
                                ["help", "safe"])
    assert torch.allclose(weighted[:, 0], molma.mean(1))


def test_cli_train_joint_so_weighted(tiny_policy_dir: str, tmp_path: Path) -> None:
    import yaml

    from moalign.cli import app
    from moalign.core.config import save_config

    save_config(_cfg(tiny_policy_dir, tmp_path / "run"), tmp_path, name="cfg.yaml")
    result = CliRunner().invoke(app, ["train-joint", "--config", str(tmp_path / "cfg.yaml"),
                                      "--mode", "so_weighted", "critic=head"])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["mode"] == "so_weighted" and saved["critic"] == "head"


# ----------------------------------------------------------------------------- compare


def test_compare_win_rates(tiny_policy_dir: str, tmp_path: Path) -> None:
    from moalign.evaluation.win_rates import compare
    from moalign.models import attach_lora, load_policy, save_adapter

    policy = load_policy(tiny_policy_dir, device="cpu")
    attach_lora(policy, "zero")  # LoRA B = 0: behaves exactly like the base model
    save_adapter(policy, "zero", tmp_path / "zero")
    attach_lora(policy, "tuned")
    with torch.no_grad():
        for n, p in policy.model.named_parameters():
            if "lora_B.tuned" in n:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    save_adapter(policy, "tuned", tmp_path / "tuned")
    prompts = [f"question {i}" for i in range(6)]
    res = compare({"tuned": tmp_path / "tuned", "zero": tmp_path / "zero",
                   "ref": tiny_policy_dir}, prompts, OBJECTIVES, tmp_path / "cmp",
                  against=["ref"], base=tiny_policy_dir, max_new_tokens=5, device="cpu")
    for f in ("results.json", "table.md", "scatter.png", "generations.jsonl"):
        assert (tmp_path / "cmp" / f).is_file(), f
    # zero == the reference: every prompt is a tie, a tie counts half
    for per in res["win_rates"]["zero vs ref"].values():
        assert per["tie"] == 6 and per["win_rate"] == 0.5
    rows = read_jsonl(tmp_path / "cmp" / "generations.jsonl")
    score = {(r["model"], r["prompt_index"]): r for r in rows}
    assert any(score[("tuned", i)]["response"] != score[("ref", i)]["response"] for i in range(6))
    for obj in ("early", "vowel"):
        diffs = [score[("tuned", i)][obj] - score[("ref", i)][obj] for i in range(6)]
        expected = (sum(d > 0 for d in diffs) + 0.5 * sum(d == 0 for d in diffs)) / 6
        assert res["win_rates"]["tuned vs ref"][obj]["win_rate"] == pytest.approx(expected)
    assert json.loads((tmp_path / "cmp" / "results.json").read_text())["pairs"] == \
        [["tuned", "ref"], ["zero", "ref"]]
    assert "tuned vs ref" in (tmp_path / "cmp" / "table.md").read_text()


# ----------------------------------------------------------------------------- wiring

SCORES = {"a": (0.9, 0.2), "b": (0.3, 0.7), "c": (0.6, 0.55), "d": (0.1, 0.95)}


def table_early(prompts: list[str], responses: list[str]) -> list[float]:
    return [SCORES[r][0] for r in responses]


def table_vowel(prompts: list[str], responses: list[str]) -> list[float]:
    return [SCORES[r][1] for r in responses]


TABLE_OBJECTIVES = [{"kind": "python", "function": f"{__name__}:{f}", "name": f}
                    for f in ("table_early", "table_vowel")]


def _perturb_lora(model: torch.nn.Module, seed: int) -> None:
    """Random LoRA B (PEFT starts at 0): the policy differs from π0, the critic from the base."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def _hand_gae(rewards: torch.Tensor, values: torch.Tensor, lengths: list[int], gamma: float,
              lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE row by row with Python loops: δ_t = r_t + γ·V_{t+1} − V_t (V_L = 0),
    A_t = δ_t + γλ·A_{t+1}; returns = A + V; both 0 on padding."""
    adv, ret = torch.zeros_like(rewards), torch.zeros_like(rewards)
    for b, n in enumerate(lengths):
        nxt_a = torch.zeros(rewards.shape[-1], dtype=rewards.dtype)
        for t in reversed(range(n)):
            nxt_v = values[b, t + 1] if t + 1 < n else torch.zeros_like(nxt_a)
            nxt_a = rewards[b, t] + gamma * nxt_v - values[b, t] + gamma * lam * nxt_a
            adv[b, t], ret[b, t] = nxt_a, nxt_a + values[b, t]
    return adv, ret


def test_collect_builds_whitened_gae_of_kl_penalised_rewards(tiny_policy_dir: str,
                                                             tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """A stubbed rollout and table scorers, γ = 0.9 ≠ λ = 0.8, β = 0.05, T = 0.9: the memory's
    advantages are whiten(gae(r̄, V_old, mask, γ, λ)) and its returns gae's A + V_old, with
    r̄ = −β(log π − log π0) per token + WHITEN(LOGIT(r)) on the last token — all by hand here."""
    from moalign.molma import trainer
    from moalign.rollout import Rollout

    cfg = _cfg(tiny_policy_dir, tmp_path, objectives=TABLE_OBJECTIVES, gamma=0.9,
               gae_lambda=0.8, beta=0.05, temperature=0.9, memory=4)
    run = trainer.build_run(cfg)
    _perturb_lora(run.policy.model, 7)
    g = torch.Generator().manual_seed(0)
    query, resp = torch.randint(10, 1000, (4, 5), generator=g), torch.randint(10, 1000, (4, 4),
                                                                                generator=g)
    lengths = [4, 2, 3, 1]
    mask = torch.tensor([[int(t < n) for t in range(4)] for n in lengths])
    r = Rollout([f"q{i}" for i in range(4)], list("abcd"), query, torch.ones_like(query), resp,
                mask)
    monkeypatch.setattr(trainer, "sample", lambda *a, **k: r)
    exp = trainer.collect(run, 0)

    model, Tq = run.policy.model, query.shape[1]
    ids, attn = torch.cat([query, resp], 1), torch.cat([torch.ones_like(query), mask], 1)

    def logp(logits: torch.Tensor) -> torch.Tensor:  # (4, 4) at T = 0.9, 0 on padding
        lp = torch.log_softmax(logits[:, Tq - 1:-1].double() / 0.9, -1)
        return lp.gather(-1, resp.unsqueeze(-1)).squeeze(-1) * mask

    with torch.no_grad():
        pi = logp(model(input_ids=ids, attention_mask=attn).logits)
        with model.disable_adapter():
            pi0 = logp(model(input_ids=ids, attention_mask=attn).logits)
        model.set_adapter("value")
        hidden = model(input_ids=ids, attention_mask=attn,
                       output_hidden_states=True).hidden_states[-1]
        model.set_adapter("policy")
        values = run.value_head(hidden[:, Tq - 1:-1]).double()  # (4, 4, 2)
    raw = torch.tensor([SCORES[x] for x in "abcd"], dtype=torch.float64)
    x = torch.logit(raw.clamp(1e-4, 1 - 1e-4))
    white = (x - x.mean(0)) / (x.std(0, unbiased=False) + 1e-8)  # (4, 2) Eq. 3.4
    rewards = (-0.05 * (pi - pi0)).unsqueeze(-1).repeat(1, 1, 2)  # (4, 4, 2) Eq. 3.3
    for b, n in enumerate(lengths):
        rewards[b, n - 1] += white[b]
    adv, ret = _hand_gae(rewards, values, lengths, 0.9, 0.8)
    m = mask.bool()
    mean, std = adv[m].mean(0), adv[m].std(0, unbiased=False)
    want = (adv - mean) / (std + 1e-8) * mask.unsqueeze(-1)
    torch.testing.assert_close(exp.ref_logp.double(), pi0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(exp.old_values.double()[m], values[m], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(exp.returns.double(), ret, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(exp.advantages.double(), want, atol=1e-4, rtol=1e-4)
    assert exp.kl == pytest.approx(float((pi - pi0).sum(1).mean()), abs=1e-5)


def test_full_finetuning_updates_base_weights_and_resumes(tiny_policy_dir: str,
                                                          tmp_path: Path) -> None:
    """`finetune: full` trains every policy weight (no policy LoRA), keeps π0 frozen in its own
    copy, saves model/ instead of adapter/, and a resumed run equals an uninterrupted one."""
    from safetensors.torch import load_file

    kw = dict(finetune="full", iterations=2, save_every=1, lr=1e-3)
    full = train_molma(_cfg(tiny_policy_dir, tmp_path / "full", **kw))
    out = tmp_path / "full"
    assert full["finetune"] == "full" and not (out / "adapter").exists()
    base = load_file(str(Path(tiny_policy_dir) / "model.safetensors"))
    tuned = load_file(str(out / "model" / "model.safetensors"))
    assert base.keys() == tuned.keys()
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert any("layers.0." in k for k in changed) and any("norm" in k for k in changed)
    assert (out / "value_adapter" / "adapter_config.json").is_file()
    train_molma(_cfg(tiny_policy_dir, tmp_path / "cut", **{**kw, "iterations": 1}))
    resumed = train_molma(_cfg(tiny_policy_dir, tmp_path / "cut", **kw), resume=True)
    assert resumed["steps"] == full["steps"] == 4
    again = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    for k in tuned:
        torch.testing.assert_close(again[k], tuned[k], atol=1e-6, rtol=0)
    strip = [{k: v for k, v in r.items() if k != "time"} for r in
             read_jsonl(tmp_path / "cut" / "metrics.jsonl")]
    assert strip == [{k: v for k, v in r.items() if k != "time"} for r in
                     read_jsonl(out / "metrics.jsonl")]
