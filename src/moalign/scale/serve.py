"""HTTP serving of an EMORL ensemble with user-chosen objective weights per request.

`create_app(run_dir)` loads the ensemble of `RUN_DIR/ensemble.json` once and returns a FastAPI app:

* ``POST /generate`` — ``{"prompt": "..."}`` or ``{"prompts": [...]}``, optional ``weights``
  (``{objective: w}``; omitted objectives weigh 0; default: the manifest's searched
  ``best_weights``, else uniform), ``level`` (states | logits | params), ``max_new_tokens``,
  ``do_sample``, ``temperature``, ``top_p``, ``seed``. Malformed bodies get 422 (pydantic);
  unknown objectives, invalid weights (negative, NaN/inf, all zero) and oversize inputs get 400
  with a message naming the problem and the limit; a full queue gets 503.
* ``GET /health``, ``GET /objectives`` (names, default weights, limits), ``GET /metrics`` (JSON, or
  Prometheus text with ``?format=prometheus``), and FastAPI's ``/openapi.json`` and ``/docs``.

Concurrent requests are micro-batched: an asyncio queue feeds ONE worker task that collects
requests for up to ``max_wait_ms`` or until ``max_batch`` sequences, groups them by settings that
cannot share a decode (level, max_new_tokens, do_sample and, when sampling, temperature/top_p/
seed), and runs ONE aggregated generation per group with per-sequence weights (B, K) in a worker
thread (the event loop keeps accepting requests meanwhile). Greedy decoding is exact under
batching: a request's response does not depend on what it was batched with.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from moalign.core.config import require
from moalign.sampling import Sampling

LEVEL_NAMES = ("states", "logits", "params")


@dataclass
class ServeConfig:
    """Server limits and batching (the `moalign serve` options)."""

    run_dir: str = "."
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 8  # sequences decoded together at most
    max_wait_ms: float = 10.0  # how long the batcher waits for more requests
    max_new_tokens_limit: int = 256  # largest max_new_tokens a request may ask for
    default_max_new_tokens: int = 64
    max_prompt_chars: int = 4000  # per prompt
    max_prompts_per_request: int = 16
    max_queue: int = 1024  # queued requests beyond this get 503
    device: str = "auto"
    threads: int = 0  # torch intra-op threads for generation (0: torch's default)
    log_level: str = "info"  # uvicorn's log level

    def validate(self) -> None:
        for name in ("max_batch", "max_new_tokens_limit", "default_max_new_tokens",
                     "max_prompt_chars", "max_prompts_per_request", "max_queue"):
            require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        require(self.max_wait_ms >= 0, f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        require(self.threads >= 0, f"threads must be >= 0, got {self.threads}")
        require(self.default_max_new_tokens <= self.max_new_tokens_limit,
                f"default_max_new_tokens {self.default_max_new_tokens} exceeds "
                f"max_new_tokens_limit {self.max_new_tokens_limit}")
        require(0 < self.port < 65536, f"port must be in 1..65535, got {self.port}")


# ----------------------------------------------------------------------------- request models


class GenerateRequest(BaseModel):
    """Body of ``POST /generate``: exactly one of `prompt` / `prompts`."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(None, description="One prompt (the response is in `response`).")
    prompts: list[str] | None = Field(None, description="Several prompts, answered in order.")
    weights: dict[str, float] | None = Field(
        None, description="Objective weights {name: w >= 0}; omitted objectives weigh 0; "
                          "default: the ensemble's searched best weights (else uniform).")
    level: Literal["states", "logits", "params"] = "states"
    max_new_tokens: int | None = Field(None, ge=1, description="Default: the server's.")
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = Field(None, description="Sampling seed (requests sharing it batch).")

    @model_validator(mode="after")
    def _one_prompt_field(self) -> GenerateRequest:
        if (self.prompt is None) == (self.prompts is None):
            raise ValueError("give exactly one of `prompt` (a string) or `prompts` (a list)")
        if self.prompts is not None and not self.prompts:
            raise ValueError("`prompts` is empty; give at least one prompt")
        return self

    def prompt_list(self) -> list[str]:
        return [self.prompt] if self.prompt is not None else list(self.prompts or [])

    def sampling(self, max_new_tokens: int) -> Sampling:
        """The request's decoding settings (`max_new_tokens` resolved against the limits)."""
        return Sampling(max_new_tokens, self.do_sample, self.temperature, self.top_p, self.seed)


class GenerateResponse(BaseModel):
    responses: list[str]
    response: str | None = Field(None, description="The single response when `prompt` was used.")
    weights: dict[str, float]
    level: str
    max_new_tokens: int
    batch_size: int = Field(description="Sequences decoded together with this request's.")
    queue_ms: float
    latency_ms: float


class BadRequest(ValueError):
    """A request the server refuses with 400 (the message says why and names the limit)."""


# ----------------------------------------------------------------------------- metrics


@dataclass
class ServeMetrics:
    """Counters and a window of recent latencies for ``GET /metrics``."""

    window: int = 10_000
    started: float = field(default_factory=time.time)
    requests: int = 0
    sequences: int = 0
    batches: int = 0
    batched_sequences: int = 0
    max_batch_size: int = 0
    errors: int = 0
    rejected: int = 0
    latencies_ms: deque = field(default_factory=deque)

    def record_batch(self, size: int) -> None:
        self.batches += 1
        self.batched_sequences += size
        self.max_batch_size = max(self.max_batch_size, size)

    def record_request(self, n_prompts: int, latency_ms: float) -> None:
        self.requests += 1
        self.sequences += n_prompts
        self.latencies_ms.append(latency_ms)
        while len(self.latencies_ms) > self.window:
            self.latencies_ms.popleft()

    def percentile(self, q: float) -> float | None:
        values = sorted(self.latencies_ms)
        if not values:
            return None
        rank = max(0, math.ceil(q / 100 * len(values)) - 1)  # nearest-rank percentile
        return values[rank]

    def snapshot(self, queue_depth: int) -> dict[str, Any]:
        return {
            "requests_served": self.requests, "sequences_served": self.sequences,
            "batches": self.batches, "mean_batch_size": (self.batched_sequences / self.batches
                                                         if self.batches else 0.0),
            "max_batch_size": self.max_batch_size, "errors": self.errors,
            "rejected": self.rejected, "queue_depth": queue_depth,
            "latency_ms": {f"p{q}": self.percentile(q) for q in (50, 90, 99)},
            "uptime_s": round(time.time() - self.started, 3),
        }


def prometheus_text(snap: dict[str, Any]) -> str:
    """The metrics snapshot in the Prometheus text exposition format."""
    lines = []
    for key in ("requests_served", "sequences_served", "batches", "errors", "rejected"):
        lines += [f"# TYPE moalign_{key}_total counter", f"moalign_{key}_total {snap[key]}"]
    for key in ("mean_batch_size", "max_batch_size", "queue_depth", "uptime_s"):
        lines += [f"# TYPE moalign_{key} gauge", f"moalign_{key} {snap[key]}"]
    lines.append("# TYPE moalign_latency_ms summary")
    for q, v in snap["latency_ms"].items():
        if v is not None:
            lines.append(f'moalign_latency_ms{{quantile="0.{q[1:]}"}} {v}')
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the batcher


@dataclass
class Job:
    """One request waiting for the batcher: formatted prompts, a (K,) weight row, settings."""

    texts: list[str]
    weights: list[float]
    key: tuple  # requests with equal keys can share one decode
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)
    batch_size: int = 0
    started: float = 0.0


RunBatch = Callable[[list[str], list[list[float]], tuple], list[str]]


class MicroBatcher:
    """An asyncio queue plus ONE worker task: collect requests for `max_wait_s` (or up to
    `max_batch` sequences), run one generation per settings group in a thread, resolve futures.
    """

    def __init__(self, run_batch: RunBatch, max_batch: int, max_wait_s: float, max_queue: int,
                 metrics: ServeMetrics) -> None:
        self.run_batch, self.max_batch, self.max_wait_s = run_batch, max_batch, max_wait_s
        self.metrics = metrics
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max_queue)
        self._held: Job | None = None  # collected but did not fit the last batch
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def depth(self) -> int:
        return self.queue.qsize() + (self._held is not None)

    async def submit(self, job: Job) -> list[str]:
        """Queue a job and wait for its responses (503-worthy `asyncio.QueueFull` when full)."""
        self.queue.put_nowait(job)
        return await job.future

    async def _collect(self) -> list[Job]:
        """The next window: first job, then more until `max_batch` sequences or the deadline."""
        first = self._held or await self.queue.get()
        self._held = None
        jobs, rows = [first], len(first.texts)
        deadline = time.perf_counter() + self.max_wait_s
        while rows < self.max_batch:
            timeout = deadline - time.perf_counter()
            try:
                job = (self.queue.get_nowait() if timeout <= 0 else
                       await asyncio.wait_for(self.queue.get(), timeout))
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if rows + len(job.texts) > self.max_batch:
                self._held = job
                break
            jobs.append(job)
            rows += len(job.texts)
        return jobs

    async def _worker(self) -> None:
        while True:
            jobs = await self._collect()
            groups: dict[tuple, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for key, group in groups.items():
                await self._run_group(key, group)

    async def _run_group(self, key: tuple, group: list[Job]) -> None:
        """One generation for the group; if it fails, each request alone, so that one failing
        request does not fail the requests it was batched with."""
        texts = [t for job in group for t in job.texts]
        weights = [job.weights for job in group for _ in job.texts]  # (B, K) per sequence
        started = time.perf_counter()
        for job in group:
            job.batch_size, job.started = len(texts), started
        try:
            out = await asyncio.to_thread(self.run_batch, texts, weights, key)
        except Exception as e:
            if len(group) > 1:
                for job in group:
                    await self._run_group(key, [job])
                return
            self.metrics.errors += 1
            if not group[0].future.done():
                group[0].future.set_exception(e)
            return
        self.metrics.record_batch(len(texts))
        start = 0
        for job in group:
            n = len(job.texts)
            if not job.future.done():
                job.future.set_result(out[start:start + n])
            start += n


# ----------------------------------------------------------------------------- the service


class Service:
    """The loaded ensemble, request validation, and the generation that the batcher calls."""

    def __init__(self, cfg: ServeConfig, ensemble: Any, manifest: Any) -> None:
        self.cfg, self.ensemble, self.manifest = cfg, ensemble, manifest
        self.objectives: list[str] = list(ensemble.objectives)
        self.default_weights = self._default_weights()
        self.metrics = ServeMetrics()
        self.batcher = MicroBatcher(self.run_batch, cfg.max_batch, cfg.max_wait_ms / 1000.0,
                                    cfg.max_queue, self.metrics)

    def _default_weights(self) -> dict[str, float]:
        best = getattr(self.manifest, "best_weights", None) or {}
        if best:
            w = self.weights_row(best)
            return dict(zip(self.objectives, w, strict=True))
        return {n: 1.0 / len(self.objectives) for n in self.objectives}

    def weights_row(self, spec: dict[str, float]) -> list[float]:
        """Validated (K,) weights from ``{objective: w}``; `BadRequest` names the problem."""
        from moalign.core.config import ConfigError
        from moalign.core.errors import ObjectiveError
        from moalign.emorl.ensemble import parse_weights

        try:
            parse_weights(dict(spec), self.objectives)  # unknown names, NaN, < 0, all zero
        except (ObjectiveError, ConfigError) as e:
            raise BadRequest(f"invalid weights: {e}") from None
        return [float(spec.get(n, 0.0)) for n in self.objectives]  # exact, omitted = 0

    def check_limits(self, req: GenerateRequest) -> int:
        """Enforce the size limits; return the request's max_new_tokens."""
        prompts, cfg = req.prompt_list(), self.cfg
        if len(prompts) > cfg.max_prompts_per_request:
            raise BadRequest(f"{len(prompts)} prompts in one request; the limit is "
                             f"max_prompts_per_request={cfg.max_prompts_per_request}")
        for i, p in enumerate(prompts):
            if len(p) > cfg.max_prompt_chars:
                raise BadRequest(f"prompt {i} has {len(p)} characters; the limit is "
                                 f"max_prompt_chars={cfg.max_prompt_chars}")
            if not p.strip():
                raise BadRequest(f"prompt {i} is empty")
        n = req.max_new_tokens or cfg.default_max_new_tokens
        if n > cfg.max_new_tokens_limit:
            raise BadRequest(f"max_new_tokens={n} exceeds the limit "
                             f"max_new_tokens_limit={cfg.max_new_tokens_limit}")
        return n

    def make_job(self, req: GenerateRequest) -> Job:
        from moalign.models import format_prompts

        max_new = self.check_limits(req)
        weights = self.weights_row(req.weights if req.weights is not None
                                   else self.default_weights)
        key = (req.level, req.sampling(max_new).key())  # greedy ignores temperature/top_p/seed
        texts = format_prompts(self.ensemble.policy, req.prompt_list(), self.manifest.system)
        return Job(texts, weights, key, asyncio.get_running_loop().create_future())

    def run_batch(self, texts: list[str], weights: list[list[float]], key: tuple) -> list[str]:
        """ONE aggregated generation for a group of compatible requests (runs in a thread)."""
        import torch

        from moalign.emorl.decoding import generate

        level, sampling = key
        out = generate(self.ensemble, texts, torch.tensor(weights, dtype=torch.float32),
                       level=level, sampling=sampling)
        return [s.strip() for s in out]

    def info(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"objectives": self.objectives, "default_weights": self.default_weights,
                "levels": list(LEVEL_NAMES),
                "limits": {"max_batch": cfg.max_batch, "max_wait_ms": cfg.max_wait_ms,
                           "max_new_tokens_limit": cfg.max_new_tokens_limit,
                           "default_max_new_tokens": cfg.default_max_new_tokens,
                           "max_prompt_chars": cfg.max_prompt_chars,
                           "max_prompts_per_request": cfg.max_prompts_per_request}}


# ----------------------------------------------------------------------------- the app


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for e in errors:
        if e.get("type") == "json_invalid":
            reason = (e.get("ctx") or {}).get("error", "")
            parts.append(f"the body is not valid JSON ({reason})" if reason else
                         "the body is not valid JSON")
            continue
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def _install_handlers(app: Any) -> None:
    from fastapi import Request
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type", "ctx")}
                  for e in exc.errors()]
        return JSONResponse(status_code=422, content=jsonable_encoder(
            {"error": _validation_message(errors), "detail": errors}))

    @app.exception_handler(BadRequest)
    async def on_bad(_request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse(status_code=400, content={"error": str(exc), "detail": str(exc)})


def _add_routes(app: Any, svc: Service) -> None:
    from fastapi import HTTPException, Query
    from fastapi.responses import PlainTextResponse

    @app.post("/generate", response_model=GenerateResponse,
              summary="Generate with per-request objective weights",
              responses={400: {"description": "invalid weights or oversize input"},
                         422: {"description": "malformed body"},
                         503: {"description": "queue full"}})
    async def generate_route(req: GenerateRequest) -> GenerateResponse:
        t0 = time.perf_counter()
        job = svc.make_job(req)
        try:
            responses = await svc.batcher.submit(job)
        except asyncio.QueueFull:
            svc.metrics.rejected += 1
            raise HTTPException(503, f"server busy: max_queue={svc.cfg.max_queue} requests "
                                     "are waiting; retry later") from None
        except Exception as e:
            raise HTTPException(500, f"generation failed: {type(e).__name__}: {e}") from None
        done = time.perf_counter()
        svc.metrics.record_request(len(job.texts), (done - t0) * 1000)
        return GenerateResponse(
            responses=responses, response=responses[0] if req.prompt is not None else None,
            weights=dict(zip(svc.objectives, job.weights, strict=True)), level=req.level,
            max_new_tokens=job.key[1].max_new_tokens, batch_size=job.batch_size,
            queue_ms=round((job.started - job.enqueued) * 1000, 3),
            latency_ms=round((done - t0) * 1000, 3))

    @app.get("/health", summary="Liveness and the served objectives")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "objectives": svc.objectives, "base": svc.manifest.base,
                "queue_depth": svc.batcher.depth}

    @app.get("/objectives", summary="Objective names, default weights and limits")
    async def objectives() -> dict[str, Any]:
        return svc.info()

    @app.get("/metrics", summary="Counters, batch sizes and latency percentiles")
    async def metrics(format: Literal["json", "prometheus"] = Query("json")) -> Any:
        snap = svc.metrics.snapshot(svc.batcher.depth)
        if format == "prometheus":
            return PlainTextResponse(prometheus_text(snap))
        return snap


def create_app(run_dir: str | Path, max_batch: int = 8, max_wait_ms: float = 10.0,
               max_new_tokens_limit: int = 256, max_prompt_chars: int = 4000,
               ensemble: Any = None, manifest: Any = None, **options: Any) -> Any:
    """A FastAPI app serving the ensemble of `run_dir` (loaded once, here).

    `options` are further `ServeConfig` fields (`default_max_new_tokens`,
    `max_prompts_per_request`, `max_queue`, `device`, `threads`). Pass an already loaded
    `ensemble` and `manifest` to share one model between apps (benchmarks)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    from moalign.emorl.manifest import EnsembleManifest, load_ensemble

    options.setdefault("default_max_new_tokens", min(64, max_new_tokens_limit))
    cfg = ServeConfig(run_dir=str(run_dir), max_batch=max_batch, max_wait_ms=max_wait_ms,
                      max_new_tokens_limit=max_new_tokens_limit,
                      max_prompt_chars=max_prompt_chars, **options)
    cfg.validate()
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)  # process-wide: the generation thread uses it
    manifest = manifest or EnsembleManifest.load(run_dir)  # fails fast, before loading torch
    if ensemble is None:
        ensemble, manifest = load_ensemble(run_dir, device=cfg.device)
    svc = Service(cfg, ensemble, manifest)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        svc.batcher.start()
        yield
        await svc.batcher.stop()

    app = FastAPI(title="moalign", version="0.1.0", lifespan=lifespan,
                  description="Generation from an EMORL ensemble of LoRA experts with "
                              "per-request objective weights (decode-time aggregation).")
    app.state.service = svc
    _install_handlers(app)
    _add_routes(app, svc)
    return app


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0,
                    startup_timeout_s: float = 60.0):
    """Run `app` under uvicorn in a background thread; yield its base URL; stop on exit.

    ``port=0`` takes a free port. Used by the tests and `bench/serve_load.py`."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="moalign-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server on {host}:{port} did not start")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
