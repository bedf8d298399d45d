"""Benchmark: the hierarchical weight search's batched, cached evaluator vs a per-point loop.

The counsel-demo search settings (EMORL Algorithm 1, `states` aggregation, greedy, 4 validation
prompts, 20 new tokens, 2 iterations, simplex-normalised points) on SmolLM2 with K random LoRA
experts and the demo's objectives (reflection and empathy MiniLM heads; K = 3 adds the SmolLM2
perplexity fluency scorer). Both sides run the same `hierarchical_grid_search` with the same
evaluator (`make_weight_evaluator`), so they evaluate exactly the same points (equal
evaluations, the corner cache included): batched = every iteration's uncached points in ONE
generate + score call; per-point = `batch_size=1`, one call per point. `--repeats` interleaved
runs per K; prints median seconds, per-repeat ratios, evaluations, peak RSS and a SUMMARY line
against the target per-point/batched >= 3.

    .venv/bin/python bench/search.py             # SmolLM2, K = 2 and 3 (~3 min idle)
    .venv/bin/python bench/search.py --tiny      # random tiny Llama: seconds, overhead-bound
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from benchkit import peak_rss_mb

from moalign.algorithms.grid_search import SearchResult, hierarchical_grid_search
from moalign.emorl.ensemble import Ensemble
from moalign.evaluation.evaluate import make_weight_evaluator
from moalign.models import SMOLLM2, Policy, attach_lora, load_policy, tiny_causal_lm
from moalign.rewards.scorers import build_scorers
from moalign.sampling import Sampling

OBJECTIVES = ("reflection", "empathy", "fluency")
PROMPTS = ("I failed my driving test again and I feel like giving up.",
           "My sister never calls me back and it hurts.",
           "I can't sleep before exams, my mind keeps racing.",
           "We are moving house and I already miss my friends.")
TARGET = 3.0
SCALE = 0.06  # std of the random LoRA B entries


def ensemble(tiny: bool, k: int, seed: int = 0) -> Ensemble:
    """The base policy with K LoRA experts whose B matrices are random (so experts differ);
    seeded, A matrices included, so every run searches the same experts."""
    policy: Policy = tiny_causal_lm() if tiny else load_policy(SMOLLM2, device="cpu")
    torch.manual_seed(seed)  # PEFT draws the A matrices from the global generator
    for name in OBJECTIVES[:k]:
        attach_lora(policy, name)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in policy.model.named_parameters():
            if "lora_B" in pname:
                p.copy_(torch.randn(p.shape, generator=gen) * SCALE)
    policy.model.eval()
    return Ensemble(policy, list(OBJECTIVES[:k]))


def timed_search(ens: Ensemble, k: int, args: argparse.Namespace, per_point: bool
                 ) -> tuple[float, SearchResult]:
    scorers = build_scorers(list(OBJECTIVES[:k]))
    evaluate = make_weight_evaluator(ens, list(PROMPTS[:args.prompts]), scorers,
                                     level="states", sampling=Sampling.greedy(args.new_tokens))
    t0 = time.perf_counter()
    result = hierarchical_grid_search(evaluate, k, args.iterations, simplex=True,
                                      batch_size=1 if per_point else None)
    return time.perf_counter() - t0, result


def bench_k(k: int, args: argparse.Namespace) -> float:
    """Interleaved repeats for one K; prints a line per side; returns the median ratio."""
    ens = ensemble(args.tiny, k)
    timed_search(ens, k, argparse.Namespace(**{**vars(args), "iterations": 1,
                                               "new_tokens": 2}), False)  # warm-up
    times: dict[str, list[float]] = {"per-point": [], "batched": []}
    results: dict[str, SearchResult] = {}
    for i in range(max(1, args.repeats)):
        order = ("per-point", "batched") if i % 2 == 0 else ("batched", "per-point")
        for side in order:
            seconds, results[side] = timed_search(ens, k, args, side == "per-point")
            times[side].append(seconds)
    med = {s: statistics.median(t) for s, t in times.items()}
    for side in times:
        n = results[side].n_evaluations
        print(f"  K={k} {side:9s} {med[side]:8.2f} s  {n} evaluations "
              f"({med[side] / n:.3f} s each)  runs {[round(t, 2) for t in times[side]]}")
    ratios = [p / b for p, b in zip(times["per-point"], times["batched"], strict=True)]
    same = results["batched"].best_point == results["per-point"].best_point
    print(f"  K={k} per-point / batched per repeat: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"same best point: {same}; peak RSS {peak_rss_mb():.0f} MiB")
    return med["per-point"] / med["batched"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="random tiny Llama instead of SmolLM2")
    ap.add_argument("--ks", type=lambda s: [int(x) for x in s.split(",")], default=[2, 3])
    ap.add_argument("--prompts", type=int, default=4, help="validation prompts per point")
    ap.add_argument("--new-tokens", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"model={'tiny-llama' if args.tiny else SMOLLM2} level=states prompts={args.prompts} "
          f"new_tokens={args.new_tokens} iterations={args.iterations} threads={args.threads} "
          f"load average {load:.2f}")
    ratios = {k: bench_k(k, args) for k in args.ks}
    print(f"  load average after: {os.getloadavg()[0]:.2f}")
    print("SUMMARY search: per-point/batched = " + ", ".join(
        f"K={k} {r:.2f}x {'OK' if r >= TARGET else 'MISSED'}" for k, r in ratios.items())
        + f" (target >= {TARGET})")


if __name__ == "__main__":
    main()
