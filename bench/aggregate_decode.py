"""Benchmark: cached `states` aggregation of 3 LoRA experts vs single-expert `generate` and the
naive paper-style loop (EMORL §4.1).

Same 8 prompts, greedy, 64 new tokens, EOS disabled so every method decodes the full length
(tokens/s = 8·64 / seconds). One timed run per method after a short warm-up.
Targets: states ≥ 10× faster than naive; states ≤ 1.5× the single-expert time.

    .venv/bin/python bench/aggregate_decode.py            # bundled SmolLM2-135M-Instruct
    .venv/bin/python bench/aggregate_decode.py --tiny     # random tiny Llama, seconds

Defaults to one intra-op thread: on a shared CPU box, OpenMP barriers waiting for descheduled
threads make multi-threaded timings meaningless (pass --threads 0 for torch's default).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from moalign.emorl.decoding import generate_ids, generate_naive_ids
from moalign.emorl.ensemble import Ensemble
from moalign.models import (
    SMOLLM2,
    Policy,
    attach_lora,
    format_prompts,
    load_policy,
    pick_device,
    tiny_causal_lm,
)
from moalign.rollout import encode_prompts
from moalign.sampling import Sampling

EXPERTS = ("reflection", "empathy", "fluency")
TOPICS = ("my job", "my sister", "sleep", "exams", "moving house", "my dog", "money", "friends")


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
    with torch.inference_mode():
        out = policy.model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return out[:, enc["input_ids"].shape[1]:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="random tiny Llama instead of SmolLM2")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    ap.add_argument("--repeats", type=int, default=3,
                    help="interleaved timings of single and states; medians are reported")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    policy = build(args.tiny, args.device)
    ens = Ensemble(policy, list(EXPERTS))
    prompts = format_prompts(policy, [f"I keep worrying about {t}." for t in TOPICS])
    n, weights = args.new_tokens, [0.6, 0.3, 0.1]
    run = dict(sampling=Sampling.greedy(n), eos_token_id=[])
    single_expert(policy, prompts[:2], 2)  # warm-up
    generate_ids(ens, prompts[:2], weights, sampling=Sampling.greedy(2))

    singles, states = [], []
    for _ in range(max(1, args.repeats)):  # interleaved: both see the same machine load
        t, out_single = timed(lambda: single_expert(policy, prompts, n))
        singles.append(t)
        t, out_states = timed(lambda: generate_ids(ens, prompts, weights, **run))
        states.append(t)
    t_single, t_states = median_times(singles), median_times(states)
    t_naive, out_naive = timed(lambda: generate_naive_ids(ens, prompts, weights, **run))
    tokens = len(prompts) * n
    assert out_single.shape == out_states.shape == out_naive.shape == (len(prompts), n)
    print(f"model={'tiny-llama' if args.tiny else SMOLLM2} prompts={len(prompts)} new_tokens={n}"
          f" experts={len(EXPERTS)} device={policy.device} threads={torch.get_num_threads()}"
          f" repeats={len(singles)} (medians; naive once)")
    print(f"  {'':30s} {'wall s':>8s} {'tokens/s':>9s} {'cpu s':>8s} {'tokens/cpu-s':>12s}")
    for name, (wall, cpu) in (("single-expert generate", t_single),
                              ("states (cached, 3 experts)", t_states),
                              ("naive (no cache, 3 experts)", t_naive)):
        print(f"  {name:30s} {wall:8.2f} {tokens / wall:9.1f} {cpu:8.2f} {tokens / cpu:12.1f}")
    for i, clock in enumerate(("wall", "cpu")):
        print(f"  [{clock:4s}] naive / states = {t_naive[i] / t_states[i]:6.2f}x (target >= 10); "
              f"states / single = {t_states[i] / t_single[i]:5.2f}x (target <= 1.5)")
    ratios = sorted(b[0] / a[0] for a, b in zip(singles, states, strict=True))
    print(f"  states / single per repeat (wall): {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"  states == naive tokens: {torch.equal(out_states, out_naive)}")
    one_hot = generate_ids(ens, prompts, [1.0, 0.0, 0.0], **run)  # untimed exactness check
    print(f"  states w=(1,0,0) == single-expert tokens: {torch.equal(one_hot, out_single)}")


if __name__ == "__main__":
    main()
