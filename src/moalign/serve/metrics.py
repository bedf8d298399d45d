"""Server metrics with prometheus_client (one registry per app), plus a small JSON view.

Latencies are in seconds and end-to-end: from the moment the request reached the server to the
last byte of the answer, so they include body reading, validation and the time spent queued
behind other requests. Queueing (submission to decode start) and decoding have their own
histograms.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0, 300.0, math.inf)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, math.inf)
ROUTES = ("/generate", "/v1/completions", "/v1/chat/completions", "/v1/models", "/health",
          "/objectives", "/metrics")


def route_label(path: str) -> str:
    """A bounded label: known routes by name, anything else (hostile paths) as "other"."""
    return path if path in ROUTES else "other"


class ServeMetrics:
    """Counters, histograms and the queue-depth gauge of one app, plus a latency window for the
    JSON view (`snapshot`)."""

    def __init__(self, queue_depth: Callable[[], int] = lambda: 0, window: int = 10_000) -> None:
        self.registry = CollectorRegistry()
        reg, self.started = self.registry, time.time()
        ProcessCollector(registry=reg)  # process_resident_memory_bytes, cpu seconds, ...
        self.requests = Counter("moalign_requests", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=reg)
        self.latency = Histogram("moalign_request_latency_seconds", "End-to-end request latency "
                                 "(arrival to last byte, queueing included)", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=reg)
        self.queue_wait = Histogram("moalign_queue_wait_seconds", "Time a generation request "
                                    "waited in the queue before its decode started",
                                    buckets=LATENCY_BUCKETS, registry=reg)
        self.decode = Histogram("moalign_decode_seconds", "Duration of one batched decode",
                                buckets=LATENCY_BUCKETS, registry=reg)
        self.batch_size = Histogram("moalign_batch_size", "Sequences per batched decode",
                                    buckets=BATCH_BUCKETS, registry=reg)
        self.sequences = Counter("moalign_sequences_decoded", "Sequences sent to the decoder "
                                 "(retries and stopped decodes included)",
                                 registry=reg)
        self.cancelled = Counter("moalign_cancelled_requests", "Requests whose client left "
                                 "before their decode finished (work skipped or aborted)",
                                 registry=reg)
        self.decode_errors = Counter("moalign_decode_errors", "Requests whose decode failed",
                                     registry=reg)
        depth = Gauge("moalign_queue_depth", "Requests waiting for the batcher", registry=reg)
        depth.set_function(lambda: float(queue_depth()))
        self.queue_depth = queue_depth
        self._latencies: deque[float] = deque(maxlen=window)
        self._statuses: dict[int, int] = {}

    def record_response(self, path: str, status: int, seconds: float) -> None:
        route = route_label(path)
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        self._statuses[status] = self._statuses.get(status, 0) + 1
        if route not in ("/health", "/metrics", "/objectives", "/v1/models") and status == 200:
            self._latencies.append(seconds)

    def record_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.decode.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def percentile(self, q: float) -> float | None:
        values = sorted(self._latencies)
        if not values:
            return None
        return values[max(0, math.ceil(q / 100 * len(values)) - 1)]  # nearest rank

    def snapshot(self) -> dict[str, Any]:
        """The JSON view (``/metrics?format=json``): totals, statuses, latency percentiles (s)."""
        batches, total = int(_sample(self.batch_size, "_count")), _sample(self.batch_size, "_sum")
        return {
            "requests_by_status": {str(k): v for k, v in sorted(self._statuses.items())},
            "sequences_decoded": int(_sample(self.sequences, "_total")),
            "batches": batches,
            "mean_batch_size": total / batches if batches else 0.0,
            "cancelled": int(_sample(self.cancelled, "_total")),
            "decode_errors": int(_sample(self.decode_errors, "_total")),
            "queue_depth": self.queue_depth(),
            "latency_seconds": {f"p{q}": self.percentile(q) for q in (50, 90, 99)},
            "uptime_s": round(time.time() - self.started, 3),
        }


def _sample(metric: Counter | Histogram, suffix: str) -> float:
    """The value of the unlabelled sample ``<name><suffix>`` (``_total``, ``_count``, ``_sum``)."""
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith(suffix):
                return float(sample.value)
    return 0.0
