"""The soak mode of `bench/serve_load.py --soak SECONDS`: a bounded run of mixed valid and invalid
requests against a server on 127.0.0.1, reporting throughput, latency percentiles as the client
saw them (queueing included), answers by status, and resident memory at start and end.

Valid requests must all answer 200 and invalid ones 4xx; any 5xx, or any other mismatch, makes
the run exit 1. Bounded by time (SECONDS) and by count (--max-requests)."""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from moalign.emorl.manifest import load_ensemble
from moalign.serve import create_app, serve_in_thread

PROMPTS = ["I feel stressed about work lately.", "My sister and I keep arguing.",
           "I can't sleep at night.", "Everyone expects too much from me."]

# (path, body): each must be refused with a 4xx
INVALID: list[tuple[str, Any]] = [
    ("/generate", {"prompt": "Hi", "weights": {"length": 1e300}}),
    ("/generate", {"prompt": "Hi", "weights": {"length": 1e-320}}),
    ("/generate", {"prompt": "Hi", "weights": {"length": True}}),
    ("/generate", {"prompt": "Hi", "max_new_tokens": "4"}),
    ("/generate", {"prompt": "Hi", "seed": 2**70}),
    ("/generate", {"prompt": "Hi", "do_sample": "yes"}),
    ("/generate", b'{"prompt": "\\ud800"}'),
    ("/generate", b'{"prompt": "Hi", "temperature": Infinity}'),
    ("/generate", {"prompt": "\u60b2" * 4000}),
    ("/generate", {"prompt": "x" * 2_000_000}),  # over the 1 MiB body cap: 413
    ("/generate", b'{"prompt": '),
    ("/v1/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
    ("/v1/completions", {"model": "{model}", "prompt": "x", "logprobs": 3}),
    ("/nowhere", {}),
]


def rss_mb() -> float:
    """Resident memory of this process (the server runs in it) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)] if ordered else float("nan")


def valid_request(rng: random.Random, model: str, objectives: list[str],
                  max_new: int) -> tuple[str, Any, bool]:
    """(path, body, streamed) of a well-formed request with random weights."""
    raw = [rng.random() + 1e-3 for _ in objectives]
    weights = {n: round(x / sum(raw), 4) for n, x in zip(objectives, raw, strict=True)}
    prompt = rng.choice(PROMPTS)
    kind = rng.randrange(4)
    if kind == 0:
        return "/generate", {"prompt": prompt, "weights": weights, "max_new_tokens": max_new}, False
    if kind == 1:
        return "/v1/completions", {"model": model, "prompt": prompt, "max_tokens": max_new,
                                   "temperature": 0, "weights": weights}, False
    chat = {"model": model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_new, "temperature": 0, "weights": weights}
    return "/v1/chat/completions", {**chat, "stream": kind == 3}, kind == 3


def send(client: httpx.Client, path: str, body: Any, streamed: bool) -> int:
    if isinstance(body, bytes):
        return client.post(path, content=body,
                           headers={"content-type": "application/json"}).status_code
    if streamed:
        with client.stream("POST", path, json=body) as r:
            lines = [line for line in r.iter_lines() if line]
            if r.status_code == 200 and lines[-1] != "data: [DONE]":
                return 599  # a broken stream
            return r.status_code
    return client.post(path, json=body).status_code


def worker(url: str, deadline: float, budget: Callable[[], bool], rng: random.Random,
           model: str, objectives: list[str], args: argparse.Namespace,
           out: list[tuple[bool, int, float]]) -> None:
    with httpx.Client(base_url=url, timeout=120) as client:
        while time.monotonic() < deadline and budget():
            if rng.random() < args.invalid_share:
                path, body = rng.choice(INVALID)
                if isinstance(body, dict) and body.get("model") == "{model}":
                    body = {**body, "model": model}
                valid, streamed = False, False
            else:
                path, body, streamed = valid_request(rng, model, objectives,
                                                     args.max_new_tokens)
                valid = True
            t0 = time.perf_counter()
            status = send(client, path, body, streamed)
            out.append((valid, status, time.perf_counter() - t0))


def report(rows: list[tuple[bool, int, float]], wall: float, rss: tuple[float, float],
           server: dict[str, Any]) -> bool:
    ok = [r for r in rows if r[0]]
    latencies = [r[2] for r in ok if r[1] == 200]
    by_status = Counter(r[1] for r in rows)
    wrong_valid = sum(1 for r in ok if r[1] != 200)
    wrong_invalid = sum(1 for r in rows if not r[0] and not 400 <= r[1] < 500)
    print(f"requests: {len(rows)} in {wall:.1f} s ({len(rows) / wall:.1f} req/s); valid "
          f"{len(ok)} ({len(latencies) / wall:.2f} completions/s), invalid {len(rows) - len(ok)}")
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    print(f"valid latency (client side, queueing included): p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
          f"max {max(latencies, default=float('nan')) * 1000:.0f} ms")
    print("answers by status: " + json.dumps(dict(sorted(by_status.items()))))
    print(f"valid not 200: {wrong_valid}; invalid not 4xx: {wrong_invalid}; "
          f"5xx: {sum(v for k, v in by_status.items() if k >= 500)}")
    print(f"server: mean batch {server['mean_batch_size']:.2f}, sequences decoded "
          f"{server['sequences_decoded']}, p50 {server['latency_seconds']['p50']:.3f} s, p99 "
          f"{server['latency_seconds']['p99']:.3f} s")
    print(f"RSS: start {rss[0]:.0f} MB, end {rss[1]:.0f} MB ({rss[1] - rss[0]:+.0f} MB)")
    return wrong_valid == 0 and wrong_invalid == 0


def soak(args: argparse.Namespace, make_tiny: Callable[[Path], Path]) -> int:
    """Run the soak; exit code 0 when every answer had the expected class of status."""
    with tempfile.TemporaryDirectory(prefix="moalign-soak-") as tmp:
        run_dir = Path(args.run_dir) if args.run_dir else make_tiny(Path(tmp))
        ensemble, manifest = load_ensemble(run_dir, device=args.device)
        app = create_app(run_dir, ensemble=ensemble, manifest=manifest, max_batch=8,
                         max_wait_ms=args.max_wait_ms, threads=args.threads,
                         max_new_tokens_limit=max(args.max_new_tokens, 1))
        model = app.state.service.model_name
        rows: list[tuple[bool, int, float]] = []
        lock, sent = threading.Lock(), [0]

        def budget() -> bool:
            with lock:
                sent[0] += 1
                return sent[0] <= args.max_requests

        with serve_in_thread(app) as url:
            rss_start = rss_mb()
            print(f"soak {args.soak:g} s on {url}: concurrency {args.concurrency}, "
                  f"max_new_tokens {args.max_new_tokens}, invalid share {args.invalid_share}")
            start = time.monotonic()
            deadline = start + args.soak
            with ThreadPoolExecutor(args.concurrency) as pool:
                futures = [pool.submit(worker, url, deadline, budget, random.Random(args.seed + i),
                                       model, list(ensemble.objectives), args, rows)
                           for i in range(args.concurrency)]
            for f in futures:
                f.result()  # a client-side failure is an error of the bench, not hidden
            wall = time.monotonic() - start
            server = httpx.get(f"{url}/metrics", params={"format": "json"}).json()
            healthy = httpx.get(f"{url}/health").json()["status"] == "ok"
            rss_end = rss_mb()
    good = report(rows, wall, (rss_start, rss_end), server) and healthy
    print(f"healthy at the end: {healthy}")
    return 0 if good else 1
