"""Benchmark: cached `states` aggregation of 3 LoRA experts vs single-expert `generate` and the
naive paper-style loop (EMORL §4.1).

Same 8 prompts, greedy, 64 new tokens, EOS disabled so every method decodes the full length
(tokens/s = 8·64 / seconds). `--repeats` interleaved timings of single and states (medians and
per-repeat ratios). The naive loop is O(T²) (~4 min for all 8 prompts at one thread), so it
runs once, on the first `--naive-prompts` prompts (default all 8), against states timed once on
the same prompts (equal work on both sides; `--naive-prompts 2` for a quicker, less batched
comparison, 0 to skip it). Targets: states ≤ 1.2× the
single-expert time, states ≥ 20× faster than naive. Prints the peak RSS of the process.

`--floor` also times the plain base model (adapters off) decoding K·B = 24 rows with
transformers' `generate`: no aggregated decoder can beat a forward over K·B rows, so
floor/single is the hardware limit of the states/single ratio (on a single CPU thread the
24-row matrix products are compute-bound and cost ~2x the 8-row ones).

    .venv/bin/python bench/aggregate_decode.py            # bundled SmolLM2-135M-Instruct
    .venv/bin/python bench/aggregate_decode.py --tiny     # random tiny Llama, seconds
    .venv/bin/python bench/aggregate_decode.py --device cuda --precision bf16   # on a GPU

Defaults to one intra-op thread: on a shared CPU box, OpenMP barriers waiting for descheduled
threads make multi-threaded timings meaningless (pass --threads 0 for torch's default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from benchkit import peak_rss_mb

from moalign.emorl.decoding import generate_ids, generate_naive_ids
from moalign.emorl.ensemble import Ensemble
from moalign.models import (
    SMOLLM2,
    Policy,
    attach_lora,
    autocast,
    format_prompts,
    load_policy,
    pick_device,
    tiny_causal_lm,
)
from moalign.rollout import encode_prompts
from moalign.sampling import Sampling

EXPERTS = ("reflection", "empathy", "fluency")
TOPICS = ("my job", "my sister", "sleep", "exams", "moving house", "my dog", "money", "friends")
TARGET_SINGLE, TARGET_NAIVE = 1.2, 20.0


def build(tiny: bool, device: str = "cpu", seed: int = 0) -> Policy:
    """The policy with three LoRA experts whose B matrices are random (so experts differ)."""
    policy = tiny_causal_lm() if tiny else load_policy(SMOLLM2, device=device)
    policy.model.to(pick_device(device))
    for name in EXPERTS:
        attach_lora(policy, name)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in policy.model.named_parameters():
            if "lora_B" in pname:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
    policy.model.eval()
    return policy


def timed(fn: Callable[[], torch.Tensor]) -> tuple[tuple[float, float], torch.Tensor]:
    """(wall seconds, process CPU seconds) and the output; CPU time is the steadier number on a
    shared machine (with one thread it is the compute the method needed)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if out.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - wall, time.process_time() - cpu), out


def median_times(times: list[tuple[float, float]]) -> tuple[float, float]:
    """Per clock (wall, CPU), the median over repeats."""
    wall, cpu = (float(statistics.median(t[i] for t in times)) for i in range(2))
    return wall, cpu


def single_expert(policy: Policy, prompts: list[str], n: int) -> torch.Tensor:
    """Baseline: one expert active, ordinary HF `generate` with a KV cache."""
    enc = encode_prompts(policy, prompts)
    policy.model.set_adapter(EXPERTS[0])
    with torch.inference_mode(), autocast(policy):
        out = policy.model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return out[:, enc["input_ids"].shape[1]:]


def base_rows(policy: Policy, prompts: list[str], n: int) -> torch.Tensor:
    """The floor: the base model (adapters off) decoding every prompt once per expert."""
    enc = encode_prompts(policy, [p for _ in EXPERTS for p in prompts])  # (K·B, S)
    with torch.inference_mode(), policy.model.disable_adapter(), autocast(policy):
        out = policy.model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return out[:, enc["input_ids"].shape[1]:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="random tiny Llama instead of SmolLM2")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    ap.add_argument("--precision", default="auto", help="auto (bf16 on CUDA), fp32, bf16, fp16")
    ap.add_argument("--repeats", type=int, default=3,
                    help="interleaved timings of single and states; medians are reported")
    ap.add_argument("--floor", action="store_true", help="also time the K·B-row base decode")
    ap.add_argument("--naive-prompts", type=int, default=8,
                    help="prompts for the naive-vs-states comparison (0: skip it)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    policy = build(args.tiny, args.device)
    policy.precision = args.precision
    ens = Ensemble(policy, list(EXPERTS))
    prompts = format_prompts(policy, [f"I keep worrying about {t}." for t in TOPICS])
    n, weights = args.new_tokens, [0.6, 0.3, 0.1]
    run = dict(sampling=Sampling.greedy(n), eos_token_id=[])
    single_expert(policy, prompts[:2], 2)  # warm-up
    generate_ids(ens, prompts[:2], weights, sampling=Sampling.greedy(2))

    times: dict[str, list[tuple[float, float]]] = {"single": [], "states": [], "floor": []}
    for _ in range(max(1, args.repeats)):  # interleaved: all see the same machine load
        t, out_single = timed(lambda: single_expert(policy, prompts, n))
        times["single"].append(t)
        times["states"].append(timed(lambda: generate_ids(ens, prompts, weights, **run))[0])
        if args.floor:
            times["floor"].append(timed(lambda: base_rows(policy, prompts, n))[0])
    med = {k: median_times(v) for k, v in times.items() if v}
    few, out_naive = prompts[:args.naive_prompts], None
    if few:
        med["states_few"], out_few = timed(lambda: generate_ids(ens, few, weights, **run))
        med["naive"], out_naive = timed(lambda: generate_naive_ids(ens, few, weights, **run))
    print(f"model={'tiny-llama' if args.tiny else SMOLLM2} prompts={len(prompts)} new_tokens={n}"
          f" experts={len(EXPERTS)} device={policy.device} precision={args.precision} "
          f"threads={torch.get_num_threads()} repeats={args.repeats} (medians; naive once) "
          f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
    print(f"  {'':34s} {'wall s':>8s} {'tokens/s':>9s} {'cpu s':>8s} {'tokens/cpu-s':>12s}")
    names = {"single": "single-expert generate", "states": "states (cached, 3 experts)",
             "floor": "floor: base generate, K·B rows",
             "states_few": f"states, first {len(few)} prompts",
             "naive": f"naive (no cache), first {len(few)} prompts"}
    for key, (wall, cpu) in med.items():
        rows = len(few) if key in ("states_few", "naive") else len(prompts)
        print(f"  {names[key]:34s} {wall:8.2f} {rows * n / wall:9.1f} {cpu:8.2f} "
              f"{rows * n / cpu:12.1f}")
    print(f"  peak RSS {peak_rss_mb():.0f} MiB")
    ratios = [b[0] / a[0] for a, b in zip(times["single"], times["states"], strict=True)]
    print(f"  states / single per repeat (wall): {', '.join(f'{r:.2f}' for r in ratios)}")
    for i, clock in enumerate(("wall", "cpu")):
        line = f"  [{clock:4s}] states / single = {med['states'][i] / med['single'][i]:5.2f}x"
        if "floor" in med:
            line += f"; floor / single = {med['floor'][i] / med['single'][i]:5.2f}x"
        if "naive" in med:
            line += f"; naive / states = {med['naive'][i] / med['states_few'][i]:6.2f}x"
        print(line)
    one_hot = generate_ids(ens, prompts, [1.0, 0.0, 0.0], **run)  # untimed exactness check
    print(f"  states w=(1,0,0) == single-expert tokens: {torch.equal(one_hot, out_single)}")
    if out_naive is not None:
        print(f"  states == naive tokens: {torch.equal(out_few, out_naive)}")
    single = med["states"][0] / med["single"][0]
    summary = f"SUMMARY aggregate_decode: states/single = {single:.2f} (target <= " \
              f"{TARGET_SINGLE}) {'OK' if single <= TARGET_SINGLE else 'MISSED'}"
    if "naive" in med:
        naive = med["naive"][0] / med["states_few"][0]
        summary += f"; naive/states = {naive:.1f} (target >= {TARGET_NAIVE}) " \
                   f"{'OK' if naive >= TARGET_NAIVE else 'MISSED'}"
    if "floor" in med:
        summary += f"; hardware floor/single = {med['floor'][0] / med['single'][0]:.2f}"
    print(summary)


if __name__ == "__main__":
    main()
