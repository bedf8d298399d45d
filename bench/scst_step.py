"""Benchmark: one SCST step of moalign versus TRL's GRPOTrainer configured the same way.

Both sides: the same model (float32, CPU), the same prompts in the same chat format, `--batch`
prompts per step × `--n` samples per prompt (TRL: num_generations), `--new-tokens` new tokens
(TRL: max_completion_length; EOS is suppressed on both sides with min_new_tokens so every sample
decodes the full length), temperature 1, top_k 0, top_p 1, the same LoRA (r=8, alpha=32, all
linear layers but the head) with NO dropout on either side (TRL's `disable_dropout=True` also
zeroes LoRA's dropout, so moalign runs `lora_dropout=0` to match), AdamW at the same lr, grad
clip 2, no KL/reference model (TRL beta=0), no gradient checkpointing (TRL turns it on by
default), one optimizer step per batch, and the same python reward function.
A step = sample + score + log-probs + backward + optimizer step.

Each side runs in its own process (so each reports its own peak RSS), in alternating rounds
(TRL, moalign, moalign, TRL, ...) so a drifting machine load hits both alike; in every process
the first `--warmup` steps are not timed. Prints the median step time per side (wall and
process-CPU seconds), the per-round ratios, a phase profile of both (process-CPU seconds:
sampling, scoring, log-prob forward, backward, optimizer) and a SUMMARY line: ratio
moalign/TRL against the target 0.8.

    .venv/bin/pip install "trl==1.16.0"        # the `bench` extra, not a moalign dependency
    .venv/bin/python bench/scst_step.py         # bundled SmolLM2-135M-Instruct, ~4 min idle
    .venv/bin/python bench/scst_step.py --tiny  # random tiny Llama: a quick run
    .venv/bin/python bench/scst_step.py --baseline-src /tmp/base/src   # + an older moalign

One torch thread by default (and OMP_NUM_THREADS=1 in the children): on a shared machine,
OpenMP barriers waiting for descheduled threads make multi-threaded timings meaningless.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from benchkit import Phases, peak_rss_mb

TOPICS = ("my job", "my sister", "sleep", "exams", "moving house", "my dog", "money", "friends",
          "my health", "my partner", "school", "my parents")
SYSTEM = "You are a helpful assistant."
PHASES = ("sample", "score", "logp_forward", "backward", "optimizer")
TARGET = 0.8


def prompts(k: int) -> list[str]:
    return [f"I keep worrying about {TOPICS[i % len(TOPICS)]} and I can't stop thinking about it."
            for i in range(k)]


def you_fraction(texts: list[str]) -> list[float]:
    """The shared reward: share of response words equal to 'you'."""
    out = []
    for t in texts:
        words = [w.strip(".,!?;:'\"").lower() for w in t.split()]
        out.append(sum(w == "you" for w in words) / max(len(words), 1))
    return out


def moalign_reward(prompts: list[str], responses: list[str]) -> list[float]:
    return you_fraction(responses)


def trl_reward(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return you_fraction(texts)


def model_folder(tiny: bool, tmp: Path) -> str:
    """A local model folder both frameworks load the same way."""
    from moalign.models import SMOLLM2, resolve_model, tiny_causal_lm

    if not tiny:
        return resolve_model(SMOLLM2)
    policy = tiny_causal_lm(0)
    policy.model.save_pretrained(tmp / "tiny")
    policy.tokenizer.save_pretrained(tmp / "tiny")
    return str(tmp / "tiny")


def moalign_steps(path: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """`warmup + steps` SCST steps; per-step (wall, cpu) seconds and phase CPU seconds."""
    import moalign.emorl.scst as scst
    import moalign.rewards.scorers as scorers
    import moalign.rollout as rollout

    cfg = scst.SCSTConfig(policy=path, objectives=[{"kind": "python", "function": moalign_reward,
                                                    "name": "you"}],
                          data=[*prompts(64)], val_data=prompts(2), batch_size=args.batch,
                          n_samples=args.n, max_new_tokens=args.new_tokens, lr=args.lr,
                          lora_dropout=0.0, out_dir=str(out / "moalign"), device="cpu",
                          progress=False)
    run = scst.build_run(cfg)
    run.policy.model.generation_config.min_new_tokens = args.new_tokens  # no early EOS
    phases = Phases(PHASES)
    for name, phase, origin in (("sample", "sample", rollout), ("score_matrix", "score", scorers),
                                ("train_logprobs", "logp_forward", scst)):
        phases.wrap(scst if hasattr(scst, name) else origin, name, phase)  # older trees
    phases.wrap(torch.Tensor, "backward", "backward")
    phases.wrap(torch.nn.utils, "clip_grad_norm_", "optimizer")
    phases.wrap(run.optimizer, "step", "optimizer")
    times = []
    for i in range(args.warmup + args.steps):
        batch = [run.train_prompts[j] for j in run.cursor.take(args.batch)]
        wall, cpu = time.perf_counter(), time.process_time()
        scst.scst_step(run, batch)
        if i >= args.warmup:
            times.append([time.perf_counter() - wall, time.process_time() - cpu])
        phases.end_step(i >= args.warmup)
    phases.close()
    return {"times": times, "phases": phases.rows}


def trl_steps(path: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Train TRL's GRPOTrainer for warmup + steps; per-step (wall, cpu) and phase seconds."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from moalign.models import lora_config

    phases, times = Phases(PHASES), []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.t0 = (time.perf_counter(), time.process_time())

        def on_pre_optimizer_step(self, *a: Any, **k: Any) -> None:
            self.opt = time.process_time()

        def on_optimizer_step(self, *a: Any, **k: Any) -> None:
            phases.now["optimizer"] = time.process_time() - self.opt

        def on_step_end(self, *a: Any, **k: Any) -> None:
            keep = self.seen >= args.warmup
            if keep:
                times.append([time.perf_counter() - self.t0[0], time.process_time() - self.t0[1]])
            phases.end_step(keep)
            self.seen += 1

    total = args.warmup + args.steps
    data = Dataset.from_dict({"prompt": [[{"role": "system", "content": SYSTEM},
                                          {"role": "user", "content": p}]
                                         for p in prompts(args.batch * total)]})
    config = GRPOConfig(
        output_dir=str(out / "trl"), per_device_train_batch_size=args.batch * args.n,
        num_generations=args.n, max_completion_length=args.new_tokens, learning_rate=args.lr,
        max_grad_norm=2.0, beta=0.0, temperature=1.0, top_k=0, top_p=1.0,
        loss_type="dr_grpo", scale_rewards="none", disable_dropout=True, max_steps=total,
        gradient_accumulation_steps=1, num_iterations=1, logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, weight_decay=0.0, lr_scheduler_type="constant",
        warmup_steps=0, shuffle_dataset=False, seed=0, dataloader_num_workers=0,
        gradient_checkpointing=False,  # TRL's default is True; moalign does not recompute
        generation_kwargs={"min_new_tokens": args.new_tokens},
    )
    tok = AutoTokenizer.from_pretrained(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    timer = StepTimer()
    timer.seen = 0
    trainer = GRPOTrainer(model=model, reward_funcs=trl_reward, args=config,
                          train_dataset=data, processing_class=tok,
                          peft_config=lora_config(8, 32, 0.0), callbacks=[timer])
    phases.wrap(trainer, "_generate_single_turn", "sample")
    phases.wrap(trainer, "_calculate_rewards", "score")
    phases.wrap(trainer, "compute_loss", "logp_forward")
    phases.wrap(trainer.accelerator, "backward", "backward")
    trainer.train()
    return {"times": times, "phases": phases.rows}


def child_main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = model_folder(args.tiny, tmp)
        run = trl_steps if args.child == "trl" else moalign_steps
        result = run(path, args, tmp)
    result["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result))


def spawn(args: argparse.Namespace, side: str, src: str | None) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if src:
        env["PYTHONPATH"] = src
    cmd = [sys.executable, __file__, "--child", side, "--steps", str(args.steps), "--warmup",
           str(args.warmup), "--threads", str(args.threads), "--batch", str(args.batch),
           "--n", str(args.n), "--new-tokens", str(args.new_tokens), "--lr", str(args.lr)]
    if args.tiny:
        cmd.append("--tiny")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{side} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def report(results: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[float, float]]:
    """Print medians, per-round ratios and phase tables; return median (wall, cpu) per side."""
    med = {}
    print(f"  {'side':10s} {'wall s':>8s} {'cpu s':>8s} {'peak RSS MiB':>13s}   step wall s")
    for side, rounds in results.items():
        rows = [t for r in rounds for t in r["times"]]
        med[side] = (statistics.median(t[0] for t in rows), statistics.median(t[1] for t in rows))
        rss = max(r["peak_rss_mb"] for r in rounds)
        print(f"  {side:10s} {med[side][0]:8.2f} {med[side][1]:8.2f} {rss:13.0f}   "
              f"{[round(t[0], 2) for t in rows]}")
    print(f"  phase profile (median process-CPU s): {' '.join(f'{p:>12s}' for p in PHASES)}")
    for side, rounds in results.items():
        rows = [p for r in rounds for p in r["phases"]]
        print(f"  {side:38s} " + " ".join(f"{statistics.median(r[p] for r in rows):12.3f}"
                                           for p in PHASES))
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="random tiny Llama instead of SmolLM2")
    ap.add_argument("--batch", type=int, default=4, help="prompts per step")
    ap.add_argument("--n", type=int, default=3, help="samples per prompt (num_generations)")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per process")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of processes")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--baseline-src", default=None,
                    help="also time an older moalign tree's src/ (before/after)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        child_main(args)
        return
    load = os.getloadavg()[0]
    sides: list[tuple[str, str, str | None]] = [("trl", "trl", None), ("moalign", "moalign", None)]
    if args.baseline_src:
        sides.append(("moalign@base", "moalign", args.baseline_src))
    results: dict[str, list[dict[str, Any]]] = {s[0]: [] for s in sides}
    for i in range(max(1, args.rounds)):
        for name, side, src in sides if i % 2 == 0 else sides[::-1]:
            results[name].append(spawn(args, side, src))
    print(f"model={'tiny-llama' if args.tiny else 'smollm2-135m-instruct'} batch={args.batch} "
          f"n={args.n} new_tokens={args.new_tokens} steps={args.steps}x{args.rounds} rounds "
          f"warmup={args.warmup} threads={args.threads} load average {load:.2f} -> "
          f"{os.getloadavg()[0]:.2f}")
    med = report(results)
    per_round = [statistics.median(t[0] for t in m["times"]) /
                 statistics.median(t[0] for t in t_["times"])
                 for m, t_ in zip(results["moalign"], results["trl"], strict=True)]
    print(f"  moalign/TRL per round (wall): {', '.join(f'{r:.2f}' for r in per_round)}")
    wall, cpu = (med["moalign"][i] / med["trl"][i] for i in range(2))
    if args.baseline_src:
        print(f"  moalign after/before (wall): {med['moalign'][0] / med['moalign@base'][0]:.2f}")
    print(f"SUMMARY scst_step: moalign/TRL = {wall:.2f} wall, {cpu:.2f} cpu (target <= {TARGET})"
          f" {'OK' if wall <= TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
