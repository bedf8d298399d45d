"""Benchmark: where one MOLMA iteration spends its time (MOLMA Algorithm 1).

One iteration = collect (sample the memory, score it, reference/policy log-probs and critic
values, GAE) + one optimiser step per minibatch (policy log-probs and critic values with
gradients, the K per-objective APA gradients, the Aligned-MTL combination, the critic's
backward, AdamW). The bench trains `--warmup + --iterations` iterations of the bundled
SmolLM2-135M-Instruct (`--tiny`: a random tiny Llama) with two python objectives in [0, 1]
(so no reward model has to be trained first) and prints the median process-CPU seconds per phase,
the iteration wall time, and the peak RSS. `--baseline-src DIR` times an older moalign tree's
`src/` in alternating processes (before/after, same settings, same machine load).

    .venv/bin/python bench/molma_iter.py                 # SmolLM2, memory 8, minibatch 4, 24 tokens
    .venv/bin/python bench/molma_iter.py --tiny          # a quick run
    .venv/bin/python bench/molma_iter.py --baseline-src /tmp/base/src

One torch thread by default (OMP_NUM_THREADS=1 in the children), as in bench/scst_step.py.
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

PHASES = ("sample", "score", "collect_forward", "loss_forward", "task_grads", "combine",
          "critic_backward", "optimizer")
TOPICS = ("my job", "my sister", "sleep", "exams", "moving house", "money", "friends", "school")


def prompts(k: int) -> list[str]:
    return [f"How can I stop worrying about {TOPICS[i % len(TOPICS)]}?" for i in range(k)]


def you_share(prompts: list[str], responses: list[str]) -> list[float]:
    """Objective 1 in [0, 1]: share of words equal to 'you'."""
    return [sum(w.strip(".,!?").lower() == "you" for w in r.split()) / max(len(r.split()), 1)
            for r in responses]


def short(prompts: list[str], responses: list[str]) -> list[float]:
    """Objective 2 in [0, 1]: shorter is better."""
    return [1.0 / (1.0 + len(r.split()) / 10) for r in responses]


def child(args: argparse.Namespace) -> dict[str, Any]:
    import moalign.molma.trainer as tr
    import moalign.rewards.scorers as scorers
    import moalign.rollout as rollout
    from moalign.models import SMOLLM2, resolve_model, tiny_causal_lm

    with tempfile.TemporaryDirectory() as tmp:
        path = resolve_model(SMOLLM2)
        if args.tiny:
            policy = tiny_causal_lm(0)
            policy.model.save_pretrained(Path(tmp) / "tiny")
            policy.tokenizer.save_pretrained(Path(tmp) / "tiny")
            path = str(Path(tmp) / "tiny")
        objectives = [{"kind": "python", "function": you_share, "name": "you"},
                      {"kind": "python", "function": short, "name": "short"}]
        cfg = tr.MolmaConfig(policy=path, objectives=objectives, prompts=[prompts(64)],
                             proportions=[1.0], test_fraction=0.0, memory=args.memory,
                             minibatch=args.minibatch, max_new_tokens=args.new_tokens,
                             iterations=args.warmup + args.iterations, lr=1e-5, save_every=0,
                             out_dir=str(Path(tmp) / "out"), device="cpu", progress=False)
        run = tr.build_run(cfg)
        run.policy.model.generation_config.min_new_tokens = args.new_tokens  # full length
        ph = Phases(PHASES)
        for owner, attr, phase in ((tr if hasattr(tr, "sample") else rollout, "sample", "sample"),
                                   (tr if hasattr(tr, "score_matrix") else scorers,
                                    "score_matrix", "score"),  # older trees import lazily
                                   (tr, "logprobs", "collect_forward"),
                                   (tr, "critic_states", "collect_forward"),
                                   (tr, "minibatch_losses", "loss_forward"),
                                   (tr, "task_gradients", "task_grads"), (tr, "combine", "combine"),
                                   (torch.autograd, "backward", "critic_backward"),
                                   (torch.nn.utils, "clip_grad_norm_", "optimizer"),
                                   (run.optimizer, "step", "optimizer")):
            ph.wrap(owner, attr, phase)
        times = []
        for i in range(cfg.iterations):
            wall, cpu = time.perf_counter(), time.process_time()
            exp = tr.collect(run, i)
            for idx in tr.minibatches(run, len(exp.rollout), i, 0):
                tr.train_step(run, exp, idx)
                run.step += 1
            if i >= args.warmup:
                times.append([time.perf_counter() - wall, time.process_time() - cpu])
            ph.end_step(i >= args.warmup)
    return {"times": times, "phases": ph.rows, "peak_rss_mb": peak_rss_mb()}


def spawn(args: argparse.Namespace, src: str | None) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if src:
        env["PYTHONPATH"] = src
    cmd = [sys.executable, __file__, "--child", "--threads", str(args.threads),
           "--iterations", str(args.iterations), "--warmup", str(args.warmup),
           "--memory", str(args.memory), "--minibatch", str(args.minibatch),
           "--new-tokens", str(args.new_tokens)] + (["--tiny"] if args.tiny else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"child failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--memory", type=int, default=8, help="rollouts per iteration")
    ap.add_argument("--minibatch", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=24)
    ap.add_argument("--iterations", type=int, default=2, help="timed iterations per process")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--baseline-src", default=None, help="an older moalign tree's src/")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print("RESULT " + json.dumps(child(args)))
        return
    load = os.getloadavg()[0]
    sides = [("moalign", None)] + ([("moalign@base", args.baseline_src)]
                                   if args.baseline_src else [])
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in sides}
    for i in range(max(1, args.rounds)):
        for name, src in sides if i % 2 == 0 else sides[::-1]:
            results[name].append(spawn(args, src))
    print(f"model={'tiny-llama' if args.tiny else 'smollm2-135m-instruct'} memory={args.memory}"
          f" minibatch={args.minibatch} new_tokens={args.new_tokens} K=2 "
          f"iterations={args.iterations}x{args.rounds} threads={args.threads} "
          f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
    med = {}
    for name, rounds in results.items():
        rows = [t for r in rounds for t in r["times"]]
        phases = [p for r in rounds for p in r["phases"]]
        med[name] = statistics.median(t[0] for t in rows)
        prof = {p: statistics.median(r[p] for r in phases) for p in PHASES}
        total = sum(prof.values()) or 1.0
        print(f"  {name}: iteration {med[name]:.2f} s wall (median), peak RSS "
              f"{max(r['peak_rss_mb'] for r in rounds):.0f} MiB")
        for p in sorted(PHASES, key=lambda p: -prof[p]):
            print(f"    {p:16s} {prof[p]:8.3f} cpu-s  {100 * prof[p] / total:5.1f} %")
    if args.baseline_src:
        print(f"SUMMARY molma_iter: after/before = {med['moalign'] / med['moalign@base']:.2f}")
    else:
        print(f"SUMMARY molma_iter: {med['moalign']:.2f} s per iteration")


if __name__ == "__main__":
    main()
