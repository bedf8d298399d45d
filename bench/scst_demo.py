"""Benchmark: SCST steps per minute at the counsel-demo settings (SmolLM2, the shipped
`counsel-demo` config's `training` section: 3 prompts × 2 samples × 20 tokens, LoRA dropout 0.05).

One run per demo training unit (the three experts reflection / empathy / fluency and the uniform
baseline over all three, which costs what DynaOpt costs), the steps interleaved round-robin so a
drifting machine load hits every unit alike; each unit's first `--warmup` steps are not timed.
A step = `scst_step` (sample, score, log-probs, backward, optimizer); validation is not counted.
Prints per unit the median step (wall and process-CPU seconds), steps per minute, and the peak
RSS of the process.

Before/after: `--baseline-src DIR` also runs an older source tree (its `src` folder, e.g.
`git archive <commit> src | tar -x -C /tmp/base` then `--baseline-src /tmp/base/src`) in a
subprocess, in alternating rounds with this tree, and prints the ratios after/before.

    .venv/bin/python bench/scst_demo.py
    .venv/bin/python bench/scst_demo.py --baseline-src /tmp/base/src --rounds 2
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
from benchkit import peak_rss_mb

UNITS = ("reflection", "empathy", "fluency", "uniform")


def build_runs(units: list[str], tmp: Path) -> dict[str, Any]:
    from moalign.emorl.scst import build_run
    from moalign.emorl.study import load_study, scst_config

    study = load_study("counsel-demo")
    runs = {}
    for unit in units:
        objectives = list(study.objectives) if unit == "uniform" else [unit]
        method = "uniform" if unit == "uniform" else "expert"
        cfg = scst_config(study, objectives, method, 0, tmp / unit)
        cfg.device, cfg.progress = "cpu", False
        runs[unit] = build_run(cfg)
    return runs


def measure(units: list[str], steps: int, warmup: int) -> dict[str, Any]:
    """Run `warmup + steps` SCST steps per unit, round-robin; per-step (wall, cpu) seconds."""
    from moalign.emorl.scst import scst_step

    with tempfile.TemporaryDirectory() as tmp:
        runs = build_runs(units, Path(tmp))
        times: dict[str, list[list[float]]] = {u: [] for u in units}
        for i in range(warmup + steps):
            for unit, run in runs.items():
                batch = [run.train_prompts[j] for j in run.cursor.take(run.cfg.batch_size)]
                wall, cpu = time.perf_counter(), time.process_time()
                scst_step(run, batch)
                if i >= warmup:
                    times[unit].append([time.perf_counter() - wall, time.process_time() - cpu])
    return {"times": times, "peak_rss_mb": peak_rss_mb()}


def child(args: argparse.Namespace, src: str | None) -> dict[str, Any]:
    """The measurement in a fresh process (optionally importing moalign from `src`)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if src:
        env["PYTHONPATH"] = src
    cmd = [sys.executable, __file__, "--child", "--steps", str(args.steps), "--warmup",
           str(args.warmup), "--threads", str(args.threads), "--units", ",".join(args.units)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def summarise(label: str, results: list[dict[str, Any]], units: list[str]) -> dict[str, float]:
    """Print one line per unit; return the median step wall seconds per unit."""
    med = {}
    rss = max(r["peak_rss_mb"] for r in results)
    for unit in units:
        rows = [t for r in results for t in r["times"][unit]]
        wall = statistics.median(t[0] for t in rows)
        cpu = statistics.median(t[1] for t in rows)
        med[unit] = wall
        print(f"  {label:8s} {unit:11s} step {wall:6.2f} s wall {cpu:6.2f} s cpu  "
              f"{60 / wall:5.1f} steps/min (cpu-bound {60 / cpu:5.1f})  peak RSS {rss:6.0f} MiB")
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4, help="timed steps per unit and round")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--units", type=lambda s: s.split(","), default=list(UNITS))
    ap.add_argument("--baseline-src", default=None, help="an older tree's src/ to compare with")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds (with a baseline)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(args.units, args.steps, args.warmup)))
        return
    print(f"load average {os.getloadavg()[0]:.2f}; threads={args.threads} units={args.units}")
    if not args.baseline_src:
        summarise("current", [measure(args.units, args.steps, args.warmup)], args.units)
        return
    before, after = [], []
    for _ in range(max(1, args.rounds)):  # alternating: both trees see the same machine load
        before.append(child(args, args.baseline_src))
        after.append(child(args, None))
    b = summarise("before", before, args.units)
    a = summarise("after", after, args.units)
    ratios = {u: a[u] / b[u] for u in args.units}
    print("  step time after/before: " + ", ".join(f"{u} {r:.2f}" for u, r in ratios.items()))
    total = sum(a.values()) / sum(b.values())
    print(f"SUMMARY scst_demo: steps/min after/before = {1 / total:.2f}x "
          f"(step time ratio {total:.2f}; load {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
