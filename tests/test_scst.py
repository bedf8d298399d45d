"""SCST experts and the uniform / DynaOpt baselines (EMORL §5.1, §3) on tiny real models.

The SCST maths itself (advantages, loss, per-sample KL, transforms) is covered by
tests/test_losses.py; here we test the trainer that uses it: learning, artifacts, resume
equivalence, baselines, seq2seq, errors and the CLI. Objectives are python scorers defined in
this module and referenced by dotted path (`test_scst:you_words`).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers_objectives import objective, write_prompts
from safetensors.torch import load_file
from typer.testing import CliRunner

from moalign.core.config import ConfigError
from moalign.core.errors import DataError, ObjectiveError
from moalign.core.io import append_jsonl, read_jsonl
from moalign.emorl import scst
from moalign.emorl.scst import (
    PromptCursor,
    SCSTConfig,
    has_converged,
    train_scst,
    train_seeds,
)

TIMING_KEYS = {"time", "seconds", "step_seconds", "samples_per_s", "seconds_per_step"}


# ----------------------------------------------------------------------------- objectives


def you_words(prompts: list[str], responses: list[str]) -> list[float]:
    """Share of the response's words that are 'you' (0 for an empty response)."""
    out = []
    for r in responses:
        words = [w.strip(".,!?;:").lower() for w in r.split()]
        out.append(sum(w == "you" for w in words) / len(words) if words else 0.0)
    return out


def nan_score(prompts: list[str], responses: list[str]) -> list[float]:
    return [float("nan")] * len(responses)


YOU = {"kind": "python", "function": "test_scst:you_words", "name": "you"}


# ----------------------------------------------------------------------------- fixtures


YOU_REPLIES = ["I hear you.", "You feel stuck."]
OTHER_REPLIES = ["That is hard.", "Work can be a lot.", "Tell me more."]


def tiny_counsellor(seed: int = 0, steps: int = 60) -> Any:
    """`tiny_causal_lm` taught, in a few seconds, to answer any client statement (in the chat
    format the trainer uses) with one of five short replies, 30% of them containing "you".

    A random-init model samples almost uniformly from 49k tokens, so it would never say "you";
    this one does sometimes, while its greedy reply ("Work can be a lot.") scores 0: a small,
    honest RL problem whose validation reward can only rise by learning.
    """
    from helpers_objectives import PROMPTS

    from moalign.models import format_prompts, tiny_causal_lm

    policy = tiny_causal_lm(seed)
    tok, model = policy.tokenizer, policy.model
    heads = [tok(h, add_special_tokens=False)["input_ids"] for h in format_prompts(policy, PROMPTS)]
    rng = random.Random(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        rows = []
        for _ in range(16):
            reply = rng.choice(YOU_REPLIES if rng.random() < 0.3 else OTHER_REPLIES)
            rows.append((rng.choice(heads), tok(reply, add_special_tokens=False)["input_ids"]
                         + [tok.eos_token_id]))
        width = max(len(q) + len(a) for q, a in rows)
        ids = torch.full((len(rows), width), tok.pad_token_id)
        attn = torch.zeros(len(rows), width, dtype=torch.long)
        target = torch.zeros(len(rows), width, dtype=torch.bool)  # reply tokens
        for i, (q, a) in enumerate(rows):
            ids[i, :len(q) + len(a)] = torch.tensor(q + a)
            attn[i, :len(q) + len(a)] = 1
            target[i, len(q):len(q) + len(a)] = True
        hidden = model.model(input_ids=ids, attention_mask=attn).last_hidden_state
        pred = target[:, 1:]  # position t predicts token t + 1: only reply tokens are scored
        loss = F.cross_entropy(model.lm_head(hidden[:, :-1][pred]), ids[:, 1:][pred])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return policy


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny causal (see `tiny_counsellor`) and T5 policies as local model folders + prompts."""
    from moalign.models import tiny_t5

    root = tmp_path_factory.mktemp("scst_models")
    for name, policy in (("causal", tiny_counsellor(0)), ("t5", tiny_t5(0))):
        policy.model.save_pretrained(root / name)
        policy.tokenizer.save_pretrained(root / name)
    return {"causal": root / "causal", "t5": root / "t5",
            "prompts": write_prompts(root / "prompts.jsonl")}


def tiny_cfg(models: dict[str, Path], out: Path, **kw) -> SCSTConfig:
    base = dict(policy=str(models["causal"]), objectives=[YOU], data=str(models["prompts"]),
                val_data=None, val_batch=4, batch_size=2, n_samples=3, max_new_tokens=6,
                lr=2e-2, max_steps=4, val_every=2, save_every=0, device="cpu", progress=False,
                out_dir=str(out))
    base.update(kw)
    return SCSTConfig(**base)


def adapter_weights(out_dir: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(out_dir) / "adapter" / "adapter_model.safetensors"))


def metrics(out_dir: str | Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS}
            for r in read_jsonl(Path(out_dir) / "metrics.jsonl")]


# ----------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"objectives": ["a", "b"]}, "method=expert trains one objective"),
     ({"method": "uniform", "objectives": ["a", "b"], "weights": [1.0]}, "2 objectives"),
     ({"method": "uniform", "objectives": ["a", "b"], "weights": [1.0, -0.5]}, ">= 0"),
     ({"method": "uniform", "objectives": ["a", "b"], "weights": [1.0, math.nan]}, "finite"),
     ({"method": "uniform", "objectives": ["a", "b"], "weights": [0.0, 0.0]}, "all zero"),
     ({"method": "dynaopt", "objectives": ["a", "b"], "weights": [0.5, 0.5]}, "remove"),
     ({"n_samples": 1}, "n_samples must be >= 2"), ({"lr": 0.0}, "lr must be"),
     ({"objectives": []}, "objectives is empty")],
)
def test_config_validation_is_actionable(kw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SCSTConfig(**kw).validate()


def test_weights_default_and_user() -> None:
    cfg = SCSTConfig(method="uniform", objectives=["a", "b", "c"])
    assert cfg.resolved_weights() == pytest.approx([1 / 3] * 3)
    cfg = SCSTConfig(method="uniform", objectives=["a", "b"], weights=[3.0, 0.0])
    cfg.validate()
    assert cfg.resolved_weights() == [3.0, 0.0]


def test_prompt_cursor_is_deterministic_and_wraps_epochs() -> None:
    a = PromptCursor(5, seed=3)
    taken = [a.take(3) for _ in range(4)]  # 12 prompts = 2 epochs + 2
    flat = [i for t in taken for i in t]
    assert sorted(flat[:5]) == list(range(5)) and sorted(flat[5:10]) == list(range(5))
    assert flat[:5] != flat[5:10]  # every epoch is reshuffled
    b = PromptCursor(5, seed=3)
    b.take(7)
    resumed = PromptCursor(**b.state_dict())
    assert resumed.take(5) == b.take(5)
    assert PromptCursor(5, seed=3).take(12) == flat


def test_has_converged() -> None:
    assert not has_converged([0.5] * 19, window=20, tol=0.015)
    assert has_converged([0.1] * 5 + [0.5] * 20, window=20, tol=0.015)
    assert not has_converged([0.4, 0.6] * 10, window=20, tol=0.015)
    assert has_converged([0.5, 0.505] * 10, window=20, tol=0.015)
    assert has_converged([0.0] * 3, window=3, tol=0.015)  # constant: std 0


# ----------------------------------------------------------------------------- training runs


def test_train_logprobs_match_rollout_logprobs(models: dict[str, Path]) -> None:
    """The trainer's response-only logits (`logits_to_keep`) give rollout.policy_logprobs."""
    from moalign.models import attach_lora, load_policy
    from moalign.rollout import policy_logprobs, sample
    from moalign.sampling import Sampling

    policy = attach_lora(load_policy(str(models["causal"]), device="cpu"), "x")
    r = sample(policy, ["I feel tired.", "Work is hard lately, and I am behind."],
               Sampling(5, do_sample=True), n=2)
    torch.testing.assert_close(scst.train_logprobs(policy, r, 1.0), policy_logprobs(policy, r),
                               atol=1e-5, rtol=1e-5)


def test_expert_validation_reward_rises(models: dict[str, Path], tmp_path: Path) -> None:
    cfg = tiny_cfg(models, tmp_path / "you", batch_size=4, n_samples=4, val_batch=8,
                   max_new_tokens=8, lr=1e-2, max_steps=20, val_every=5, save_every=10)
    summary = train_scst(cfg)
    before, after = summary["reward_before"]["you"], summary["reward_after"]["you"]
    assert before == 0.0 and after >= 0.3, (before, after)
    rows = read_jsonl(tmp_path / "you" / "metrics.jsonl")
    train = [r["reward/you"] for r in rows if "reward/you" in r]
    assert sum(train[-5:]) / 5 > sum(train[:5]) / 5 + 0.2, train  # the sampled reward rises
    # artifacts, log fields, summary
    out = tmp_path / "you"
    for name in ("config.yaml", "summary.json", "metrics.jsonl", "adapter/adapter_config.json",
                 "checkpoint-20/manifest.json", "checkpoint-10/manifest.json"):
        assert (out / name).exists(), name
    assert rows[0]["step"] == 0 and "val/you" in rows[0] and "val/mean" in rows[0]
    step = rows[1]
    for key in ("step", "data_consumed", "seconds", "loss", "reward/you", "weight/you",
                "samples_per_s", "grad_norm"):
        assert key in step, key
    assert [r["data_consumed"] for r in rows[1:4]] == [4, 8, 12]
    assert summary["steps"] == 20 and summary["data_consumed"] == 80
    assert summary["adapter"] == "you" and summary["converged"] is False
    assert json.loads((out / "summary.json").read_text()) == summary


def test_resume_reaches_the_same_adapter_and_metrics(models: dict[str, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """DynaOpt (bandit state + its RNG), per-sample KL and LoRA dropout all survive a kill."""
    kw = dict(method="dynaopt", objectives=[objective("length"), objective("vowel")],
              max_steps=6, save_every=2, kl_coef=0.05)
    full = tiny_cfg(models, tmp_path / "full", **kw)
    train_scst(full)

    class Killed(RuntimeError):
        pass

    real_save = scst.save_state

    def save_then_die(run: scst.Run) -> None:
        real_save(run)
        if run.step == 4:  # a step logged after the checkpoint: resuming must drop it
            append_jsonl(Path(run.cfg.out_dir) / "metrics.jsonl", {"step": 5, "lost": 1.0})
            raise Killed("simulated kill after the step-4 checkpoint")

    cut = tiny_cfg(models, tmp_path / "cut", **kw)
    monkeypatch.setattr(scst, "save_state", save_then_die)
    with pytest.raises(Killed):
        train_scst(cut)
    monkeypatch.setattr(scst, "save_state", real_save)
    assert not (tmp_path / "cut" / "summary.json").exists()
    summary = train_scst(cut, resume=True)
    a, b = adapter_weights(full.out_dir), adapter_weights(cut.out_dir)
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0), k
    assert metrics(full.out_dir) == metrics(cut.out_dir)
    assert summary["steps"] == 6 and summary["data_consumed"] == 12
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in a.items() if "lora_B" in k)


def test_uniform_and_dynaopt_log_weights(models: dict[str, Path], tmp_path: Path) -> None:
    objs = [objective("length"), objective("vowel")]
    uni = train_scst(tiny_cfg(models, tmp_path / "uni", method="uniform", objectives=objs,
                              weights=[0.25, 0.75]))
    assert uni["adapter"] == "uniform" and uni["weights"] == [0.25, 0.75]
    rows = read_jsonl(tmp_path / "uni" / "metrics.jsonl")
    assert rows[1]["weight/length"] == 0.25 and rows[1]["weight/vowel"] == 0.75
    dyn = train_scst(tiny_cfg(models, tmp_path / "dyn", method="dynaopt", objectives=objs))
    rows = read_jsonl(tmp_path / "dyn" / "metrics.jsonl")
    val_rows = [r for r in rows if "val/mean" in r]
    assert len(val_rows) == 3  # steps 0, 2, 4
    for r in val_rows:
        w = [r["bandit/weight/length"], r["bandit/weight/vowel"]]
        assert sum(w) == pytest.approx(1.0) and "bandit/outer_arm" in r
    assert set(dyn["reward_after"]) == {"length", "vowel"} and dyn["steps"] == 4


def test_t5_policy_smoke(models: dict[str, Path], tmp_path: Path) -> None:
    cfg = tiny_cfg(models, tmp_path / "t5", policy=str(models["t5"]), max_steps=3, val_every=2,
                   reward_transform="log", objectives=[objective("vowel")])
    summary = train_scst(cfg)
    assert summary["steps"] == 3 and summary["adapter"] == "vowel"
    assert (tmp_path / "t5" / "adapter" / "adapter_model.safetensors").is_file()
    rows = read_jsonl(tmp_path / "t5" / "metrics.jsonl")
    assert [r["step"] for r in rows if "val/vowel" in r] == [0, 2, 3]  # + final validation


def test_train_seeds_mean_std(models: dict[str, Path], tmp_path: Path) -> None:
    cfg = tiny_cfg(models, tmp_path / "seeds", max_steps=2, val_every=2)
    summary = train_seeds(cfg, [0, 1])
    assert (tmp_path / "seeds" / "seed_0" / "summary.json").is_file()
    assert (tmp_path / "seeds" / "seed_1" / "adapter").is_dir()
    saved = json.loads((tmp_path / "seeds" / "seeds_summary.json").read_text())
    assert saved["seeds"] == [0, 1] and set(saved["reward_after"]["you"]) == {"mean", "std"}
    assert summary["steps"] == {"mean": 2.0, "std": 0.0}


# ----------------------------------------------------------------------------- errors


def test_unknown_objective_is_an_objective_error(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ObjectiveError, match="unknown objective 'reflektion'.*known"):
        train_scst(tiny_cfg(models, tmp_path, objectives=["reflektion"]))


def test_nan_reward_names_the_objective(models: dict[str, Path], tmp_path: Path) -> None:
    bad = {"kind": "python", "function": "test_scst:nan_score", "name": "broken"}
    with pytest.raises(ObjectiveError, match="'broken' returned NaN on example 0"):
        train_scst(tiny_cfg(models, tmp_path, objectives=[bad]))


def test_missing_data_file(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        train_scst(tiny_cfg(models, tmp_path, data=str(tmp_path / "nope.jsonl")))


def test_invalid_weights_fail_before_loading(tmp_path: Path) -> None:
    cfg = SCSTConfig(method="uniform", objectives=["a", "b"], weights=[1.0, -1.0],
                     out_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="weights must be >= 0"):
        train_scst(cfg)
    assert not (tmp_path / "metrics.jsonl").exists()


# ----------------------------------------------------------------------------- CLI


def test_cli_help() -> None:
    from moalign.cli import app

    runner = CliRunner()
    for cmd in ("train-expert", "train-baseline"):
        result = runner.invoke(app, [cmd, "--help"])
        assert result.exit_code == 0, result.output
        assert "--seeds" in result.output and "--resume" in result.output
    assert "--weights" in runner.invoke(app, ["train-baseline", "--help"]).output


def test_cli_tiny_runs(models: dict[str, Path], tmp_path: Path) -> None:
    from moalign.cli import app

    runner = CliRunner()
    common = ["--policy", str(models["causal"]), f"data={models['prompts']}", "val_data=null",
              "val_batch=2", "batch_size=2", "n_samples=2", "max_new_tokens=4", "max_steps=2",
              "val_every=2", "device=cpu", "progress=false"]
    out = tmp_path / "expert"
    result = runner.invoke(app, ["train-expert", "--objective", "python:test_scst:you_words",
                                 "--out-dir", str(out), *common])
    assert result.exit_code == 0, result.output
    assert "2 steps, 4 prompts consumed" in result.output
    assert json.loads((out / "summary.json").read_text())["steps"] == 2
    saved = (out / "config.yaml").read_text()
    assert "val_data: null" in saved and f"policy: {models['causal']}" in saved  # null applies
    out = tmp_path / "uniform"
    result = runner.invoke(app, ["train-baseline", "--method", "uniform", "--objectives",
                                 "python:helpers_objectives:length_score,"
                                 "python:helpers_objectives:vowel_score",
                                 "--weights", "0.3,0.7", "--out-dir", str(out), *common])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["weights"] == [0.3, 0.7]


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["train-baseline", "--method", "uniform", "--objectives", "a,b", "--weights", "1,x"],
      "every weight must be a number"),
     (["train-baseline", "--method", "uniform", "--objectives", "a,b", "--weights", "1,2,3"],
      "weights has 3 entries but there are 2 objectives"),
     (["train-baseline", "--method", "greedy"], "not a baseline"),
     (["train-expert", "--objective", "reflektion", "max_steps=1"], "unknown objective"),
     (["train-expert", "--objective", "a", "--seeds", "0,x"], "--seeds"),
     (["train-expert", "--objective", "a", "stepz=3"], "valid keys")],
)
def test_cli_errors_print_one_line(argv: list[str], message: str, monkeypatch, capsys) -> None:
    from moalign import cli

    monkeypatch.setattr("sys.argv", ["moalign", *argv])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and len(err.splitlines()) == 1


# ----------------------------------------------------------------------------- wiring


TABLE = {"a": (0.9, 0.1), "b": (0.2, 0.6), "c": (0.5, 0.99999), "d": (0.7, 0.3),
         "e": (0.00001, 0.8), "f": (0.3, 0.4)}  # response -> (first, second) raw score


def table_first(prompts: list[str], responses: list[str]) -> list[float]:
    return [TABLE[r][0] for r in responses]


def table_second(prompts: list[str], responses: list[str]) -> list[float]:
    return [TABLE[r][1] for r in responses]


TABLE_OBJECTIVES = [{"kind": "python", "function": f"test_scst:{f}", "name": f}
                    for f in ("table_first", "table_second")]


def stub_rollout(policy: Any, eos_rows: tuple[int, ...]) -> Any:
    """2 prompts x 3 samples: fixed query / response ids, right-padded response lengths
    4, 2, 3, 1, 4, 3; the rows in `eos_rows` end with the EOS token."""
    from moalign.rollout import Rollout, eos_token_ids

    g = torch.Generator().manual_seed(0)
    vocab = policy.model.get_input_embeddings().weight.shape[0]
    query = torch.randint(10, vocab - 10, (6, 5), generator=g)
    resp = torch.randint(10, vocab - 10, (6, 4), generator=g)
    lengths = [4, 2, 3, 1, 4, 3]
    mask = torch.tensor([[int(t < n) for t in range(4)] for n in lengths])
    for row in eos_rows:
        resp[row, lengths[row] - 1] = eos_token_ids(policy)[0]
    return Rollout(["p0"] * 3 + ["p1"] * 3, list("abcdef"), query, torch.ones_like(query),
                   resp, mask)


def hand_gradient(policy: Any, r: Any, mask: torch.Tensor, weights: list[float],
                  temperature: float, kl_coef: float, n: int) -> list[torch.Tensor]:
    """REINFORCE with the per-prompt mean baseline and the per-sample KL surrogate, by hand:
    ∇ mean_b[(−A_b + c·KL_b)·Σ_t log π(y_bt)], A = Σ_k w_k·log clip(R_k) − its prompt mean."""
    R = torch.tensor([TABLE[x] for x in r.responses], dtype=torch.float64)  # (N, 2)
    rewards = torch.log(R.clamp(1e-4, 0.9999)) @ torch.tensor(weights, dtype=torch.float64)
    adv = rewards - rewards.view(-1, n).mean(1).repeat_interleave(n)  # (N,)
    model = policy.model
    ids = torch.cat([r.query_ids, r.response_ids], dim=1)
    attn = torch.cat([r.query_mask, r.response_mask], dim=1)
    Tq, Tr = r.query_ids.shape[1], r.response_ids.shape[1]

    def logp_of(logits: torch.Tensor) -> torch.Tensor:  # (N, Tr)
        pred = torch.log_softmax(logits[:, Tq - 1:Tq + Tr - 1].double() / temperature, -1)
        return pred.gather(-1, r.response_ids.unsqueeze(-1)).squeeze(-1) * mask

    logp = logp_of(model(input_ids=ids, attention_mask=attn).logits)
    with torch.no_grad(), model.disable_adapter():
        ref = logp_of(model(input_ids=ids, attention_mask=attn).logits)
    kl = (logp - ref).sum(1).detach()  # (N,)
    loss = ((-adv + kl_coef * kl) * logp.sum(1)).mean()
    params = [p for p in model.parameters() if p.requires_grad]
    return list(torch.autograd.grad(loss, params))


@pytest.mark.parametrize(("micro_batch", "count_eos"), [(0, True), (4, False)])
def test_one_scst_step_is_reinforce_with_baseline_transform_and_kl(
        models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        micro_batch: int, count_eos: bool) -> None:
    """scst_step with a stubbed sampler and table scorers: the gradient handed to the optimiser
    is the hand-computed one (log reward transform, weights (0.3, 0.7), KL 0.5, T = 0.8)."""
    cfg = tiny_cfg(models, tmp_path, method="uniform", objectives=TABLE_OBJECTIVES,
                   weights=[0.3, 0.7], reward_transform="log", kl_coef=0.5, temperature=0.8,
                   lora_dropout=0.0, grad_clip=1e9, micro_batch=micro_batch,
                   count_eos=count_eos)
    run = scst.build_run(cfg)
    with torch.no_grad():  # LoRA B = 0 would make π = π0 and the KL term inert
        g = torch.Generator().manual_seed(1)
        for name, p in run.policy.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    r = stub_rollout(run.policy, eos_rows=(0, 5))
    calls: list[tuple] = []

    def fake_sample(policy, prompts, sampling, n=1, **kw):
        calls.append((list(prompts), sampling.do_sample, sampling.temperature, n))
        return r

    monkeypatch.setattr(scst, "sample", fake_sample)
    grads: list[torch.Tensor] = []
    params = [p for p in run.policy.model.parameters() if p.requires_grad]
    monkeypatch.setattr(run.optimizer, "step",
                        lambda *a, **k: grads.extend(p.grad.clone() for p in params))
    scst.scst_step(run, ["p0", "p1"])
    assert calls == [(["p0", "p1"], True, 0.8, 3)]
    mask = r.response_mask.clone()
    if not count_eos:  # the final EOS of rows 0 and 5 leaves the loss
        mask[0, 3] = mask[5, 2] = 0
    want = hand_gradient(run.policy, r, mask, [0.3, 0.7], 0.8, 0.5, 3)
    assert len(grads) == len(want) > 0
    for got, exp in zip(grads, want, strict=True):
        scale = float(exp.abs().max())  # float32 sums over the batch: relative to the largest
        torch.testing.assert_close(got.double(), exp.double(), atol=1e-5 * scale, rtol=1e-4)


def test_dynaopt_weights_in_the_trainer_follow_the_bandit(models: dict[str, Path],
                                                          tmp_path: Path) -> None:
    """Step t trains with the weights the bandit produced at the last validation before t, and
    logs reward = Σ_k w_k·r_k (identity transform, mean over the step's samples)."""
    objs = [objective("length"), objective("vowel")]
    train_scst(tiny_cfg(models, tmp_path, method="dynaopt", objectives=objs, max_steps=8,
                        val_every=2, seed=3, max_new_tokens=8))
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    names = ("length", "vowel")
    bandit = {r["step"]: [r[f"bandit/weight/{n}"] for n in names]
              for r in rows if "bandit/weight/length" in r}
    assert sorted(bandit) == [0, 2, 4, 6, 8]
    steps = [r for r in rows if r["step"] >= 1 and "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 9))
    for r in steps:
        used = [r[f"weight/{n}"] for n in names]
        previous = max(v for v in bandit if v < r["step"])
        assert used == pytest.approx(bandit[previous]), r["step"]
        assert r["reward"] == pytest.approx(sum(w * r[f"reward/{n}"]
                                                for w, n in zip(used, names, strict=True)))
    assert len({tuple(w) for w in bandit.values()}) > 1  # the weights really moved


VAL_SEEN: list[tuple[str, str]] = []


def _length(responses: list[str]) -> list[float]:
    return [min(len(r), 40) / 40 for r in responses]


def recording_length(prompts: list[str], responses: list[str]) -> list[float]:
    VAL_SEEN.extend(zip(prompts, responses, strict=True))
    return _length(responses)


def test_validation_protocols(models: dict[str, Path], tmp_path: Path) -> None:
    """greedy_batch: the first `val_batch` prompts, one greedy response each. sampled_split
    (the EMORL authors'): every validation prompt, `val_samples` responses sampled at the
    training temperature, `val_batch` prompts per decode; seeded by (seed, step) only."""
    from helpers_objectives import write_prompts

    val = write_prompts(tmp_path / "val.jsonl", [f"I feel worried about thing {i}." for i in
                                                 range(5)])
    rec = {"kind": "python", "function": "test_scst:recording_length", "name": "len"}
    greedy = scst.build_run(tiny_cfg(models, tmp_path / "g", val_data=str(val), val_batch=2,
                                     objectives=[rec]))
    VAL_SEEN.clear()
    out = scst.validate(greedy)
    assert [p for p, _ in VAL_SEEN] == [f"I feel worried about thing {i}." for i in range(2)]
    assert out["len"] == pytest.approx(sum(_length([r for _, r in VAL_SEEN])) / 2)
    run = scst.build_run(tiny_cfg(models, tmp_path / "s", val_data=str(val), val_batch=2,
                                  val_protocol="sampled_split", val_samples=3,
                                  objectives=[rec], max_new_tokens=8))
    calls: list[tuple] = []
    real = scst.sample

    def spy(policy, prompts, sampling, n=1, **kw):
        calls.append((len(prompts), n, sampling.do_sample, sampling.temperature))
        return real(policy, prompts, sampling, n=n, **kw)

    scst.sample = spy
    try:
        VAL_SEEN.clear()
        rng = torch.get_rng_state()
        first = scst.validate(run)
        assert torch.equal(torch.get_rng_state(), rng)  # the training RNG is untouched
        seen = list(VAL_SEEN)
        again = scst.validate(run)
    finally:
        scst.sample = real
    assert calls[:3] == [(2, 3, True, 1.0), (2, 3, True, 1.0), (1, 3, True, 1.0)]
    prompts = [f"I feel worried about thing {i}." for i in range(5)]
    assert [p for p, _ in seen] == [p for p in prompts for _ in range(3)]
    scores = _length([r for _, r in seen])
    VAL_SEEN.clear()
    assert first["len"] == pytest.approx(sum(scores) / len(scores))
    assert again == first  # same step, same seed: the same responses
    assert len({r for _, r in seen}) > 1  # sampled, not greedy
