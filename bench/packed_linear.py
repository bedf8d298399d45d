"""Benchmark: a prepacked oneDNN linear (`moalign.packed_linear`) vs `F.linear` (MKL sgemm).

The weight shapes of SmolLM2-135M (attention 576x576, key/value 192x576, MLP 1536x576 and
576x1536, the tied 49,152x576 LM head) at the row counts a policy runs: 1 (one served request),
12 (an SCST decode step: 4 prompts x 3 samples), 96 and 384 (the gradient pass: 12 rows x 32
tokens), forward and the input gradient of the backward pass (g·W, a product with W^T). Both
sides run interleaved in one process; prints milliseconds, the ratio MKL/packed, the largest
difference of the outputs, the one-off packing time and peak RSS.

    .venv/bin/python bench/packed_linear.py             # ~20 s
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from benchkit import peak_rss_mb

from moalign import packed_linear

SHAPES = ((576, 576), (192, 576), (1536, 576), (576, 1536), (49152, 576))
ROWS = (1, 12, 96, 384)


def median_ms(fn: Callable[[], torch.Tensor], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not packed_linear.available():
        print("packed linear unavailable on this torch build / MOALIGN_PACKED_LINEAR=0")
        return
    print(f"threads={args.threads} load average {os.getloadavg()[0]:.2f}")
    print(f"{'weight (out x in)':>18s} {'rows':>5s} {'MKL ms':>8s} {'packed ms':>9s} "
          f"{'ratio':>6s} {'max |diff|':>10s}")
    ratios = []
    for out_f, in_f in SHAPES:
        w = torch.randn(out_f, in_f) / in_f ** 0.5
        t0 = time.perf_counter()
        packed = packed_linear._reorder(w)
        pack_ms = (time.perf_counter() - t0) * 1e3
        for rows in ROWS:
            x = torch.randn(rows, in_f)
            dense = median_ms(lambda: F.linear(x, w), args.repeats)  # noqa: B023
            fast = median_ms(lambda: packed_linear._linear(x, packed, None), args.repeats)  # noqa: B023
            diff = (F.linear(x, w) - packed_linear._linear(x, packed, None)).abs().max().item()
            ratios.append(dense / fast)
            print(f"{out_f:>8d} x {in_f:<7d} {rows:5d} {dense:8.3f} {fast:9.3f} "
                  f"{dense / fast:6.2f} {diff:10.1e}")
        print(f"{'':>18s} packing once: {pack_ms:.1f} ms")
    print(f"peak RSS {peak_rss_mb():.0f} MiB; load average after {os.getloadavg()[0]:.2f}")
    print(f"SUMMARY packed linear: MKL/packed median {statistics.median(ratios):.2f}x "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}) over {len(ratios)} shapes")


if __name__ == "__main__":
    main()
