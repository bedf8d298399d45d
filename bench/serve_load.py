"""Bounded load test of `moalign serve`: requests/s and latency percentiles, unbatched vs batched,
or a bounded soak with mixed valid and invalid requests.

Starts the server itself on 127.0.0.1 (a free port, in a background thread) and sends a FIXED
number of requests with FIXED concurrency, each with its own objective weights, under a time
limit; then repeats with micro-batching (max_batch=1 vs 8 by default) and prints the ratio. Both
runs share one loaded ensemble and send identical requests, so the greedy responses must match.

``--soak SECONDS`` instead sends, for that long (and at most ``--max-requests``), a mix of valid
requests (`/generate`, `/v1/completions`, `/v1/chat/completions`, streamed chat) and invalid ones
(bad weights, loose types, invalid Unicode, oversize bodies, unknown routes), and reports
throughput, p50/p99 latency as the client saw it (queueing included), answers by status, and the
resident memory at start and end (`bench/serve_soak.py`). Traffic goes to loopback only.

    python bench/serve_load.py                         # tiny random ensemble (no downloads)
    python bench/serve_load.py --run-dir runs/emorl    # a real ensemble (ensemble.json)
    python bench/serve_load.py --soak 60               # one minute of mixed traffic
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

PROMPTS = [
    "I feel stressed about work lately.", "My sister and I keep arguing.",
    "I can't sleep at night.", "I don't know if I should change jobs.",
    "Everyone expects too much from me.", "I feel lonely since I moved.",
    "My exams are coming and I panic.", "I want to drink less but it's hard.",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run-dir", help="ensemble run directory (default: a tiny random ensemble)")
    p.add_argument("--requests", type=int, default=48, help="requests per configuration")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    p.add_argument("--max-batch", type=int, nargs="+", default=[1, 8],
                   help="server max_batch values to compare (first = baseline)")
    p.add_argument("--max-wait-ms", type=float, default=20.0)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--level", default="states", choices=["states", "logits", "params"])
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds allowed per configuration (requests left then are dropped)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--soak", type=float, default=0.0, metavar="SECONDS",
                   help="run a bounded soak of mixed valid/invalid requests for SECONDS")
    p.add_argument("--max-requests", type=int, default=100_000,
                   help="soak: stop after this many requests even before SECONDS")
    p.add_argument("--invalid-share", type=float, default=0.3,
                   help="soak: share of invalid requests")
    return p.parse_args(argv)


def tiny_ensemble(folder: Path, names: tuple[str, ...] = ("length", "vowel")) -> Path:
    """A tiny random-init Llama (real SmolLM2 tokenizer) plus one random LoRA per objective."""
    import torch

    from moalign.emorl.manifest import EnsembleManifest
    from moalign.models import attach_lora, load_policy, save_adapter, tiny_causal_lm

    base = tiny_causal_lm(0)
    base.model.save_pretrained(folder / "base")
    base.tokenizer.save_pretrained(folder / "base")
    experts = {}
    for i, name in enumerate(names):
        policy = attach_lora(load_policy(str(folder / "base"), device="cpu"), name)
        gen = torch.Generator().manual_seed(i)
        with torch.no_grad():
            for pname, p in policy.model.named_parameters():
                if "lora_" in pname:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        save_adapter(policy, name, folder / "experts" / name)
        experts[name] = f"experts/{name}"
    EnsembleManifest(base=str(folder / "base"), experts=experts).save(folder)
    return folder


def make_bodies(objectives: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Fixed request bodies: a prompt and random simplex weights each (seeded)."""
    rng = random.Random(args.seed)
    bodies = []
    for i in range(args.requests):
        raw = [rng.random() + 1e-3 for _ in objectives]
        weights = {n: round(x / sum(raw), 4) for n, x in zip(objectives, raw, strict=True)}
        bodies.append({"prompt": PROMPTS[i % len(PROMPTS)], "weights": weights,
                       "level": args.level, "max_new_tokens": args.max_new_tokens})
    return bodies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)] if ordered else float("nan")


def load(url: str, bodies: list[dict[str, Any]], concurrency: int,
         timeout: float) -> dict[str, Any]:
    """Send every body with `concurrency` in flight; bounded by `timeout` seconds overall."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=url, timeout=timeout, limits=limits) as client:
        client.post("/generate", json=bodies[0]).raise_for_status()  # warm-up

        def one(body: dict[str, Any]) -> tuple[float, str]:
            t0 = time.perf_counter()
            r = client.post("/generate", json=body)
            r.raise_for_status()
            return (time.perf_counter() - t0) * 1000, r.json()["response"]

        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            futures = [pool.submit(one, b) for b in bodies]
            done, pending = wait(futures, timeout=timeout)
            for f in pending:
                f.cancel()
        wall = time.perf_counter() - start
        metrics = client.get("/metrics", params={"format": "json"}).json()
    results = [f.result() if f in done and f.exception() is None else None for f in futures]
    ok = [r for r in results if r is not None]
    lat = [r[0] for r in ok]
    return {"completed": len(ok), "failed": len(results) - len(ok), "wall_s": wall,
            "rps": len(ok) / wall if wall > 0 else 0.0, "p50": percentile(lat, 50),
            "p90": percentile(lat, 90), "p99": percentile(lat, 99),
            "mean_batch": metrics["mean_batch_size"], "responses": [r and r[1] for r in results]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.soak > 0:
        from serve_soak import soak

        return soak(args, tiny_ensemble)
    from moalign.emorl.manifest import load_ensemble
    from moalign.serve import create_app, serve_in_thread

    with tempfile.TemporaryDirectory(prefix="moalign-bench-") as tmp:
        run_dir = Path(args.run_dir) if args.run_dir else tiny_ensemble(Path(tmp))
        ensemble, manifest = load_ensemble(run_dir, device=args.device)
        bodies = make_bodies(list(ensemble.objectives), args)
        print(f"ensemble {run_dir} ({', '.join(ensemble.objectives)}), {args.requests} requests, "
              f"concurrency {args.concurrency}, max_new_tokens {args.max_new_tokens}, "
              f"level {args.level}, max_wait_ms {args.max_wait_ms}")
        print(f"{'max_batch':>9} {'done':>5} {'req/s':>7} {'p50 ms':>8} {'p90 ms':>8} "
              f"{'p99 ms':>8} {'mean batch':>10}")
        rows = []
        for mb in args.max_batch:
            app = create_app(run_dir, max_batch=mb, max_wait_ms=args.max_wait_ms,
                             max_new_tokens_limit=max(args.max_new_tokens, 1),
                             ensemble=ensemble, manifest=manifest, threads=args.threads,
                             max_queue=max(args.requests, 1) + 1)
            with serve_in_thread(app) as url:
                row = load(url, bodies, args.concurrency, args.timeout)
            rows.append(row)
            print(f"{mb:>9} {row['completed']:>5} {row['rps']:>7.2f} {row['p50']:>8.1f} "
                  f"{row['p90']:>8.1f} {row['p99']:>8.1f} {row['mean_batch']:>10.2f}")
    base, best = rows[0], rows[-1]
    if base["rps"] > 0:
        print(f"throughput ratio (max_batch={args.max_batch[-1]} / {args.max_batch[0]}): "
              f"{best['rps'] / base['rps']:.2f}x; p50 latency ratio "
              f"{best['p50'] / base['p50']:.2f}x")
    same = all(r["responses"] == base["responses"] for r in rows)
    print(f"greedy responses identical across batch sizes: {same}")
    return 0 if all(r["failed"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
