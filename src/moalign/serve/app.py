"""The FastAPI app: ``POST /generate``, the OpenAI-compatible ``/v1`` routes, ``/health``,
``/objectives`` and ``/metrics``, behind the `Guard` (auth, body cap, metrics)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import torch
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from moalign.core.config import ConfigError
from moalign.emorl.ensemble import Ensemble
from moalign.emorl.manifest import MANIFEST, EnsembleManifest
from moalign.models import load_policy
from moalign.serve.config import ServeConfig
from moalign.serve.errors import install_error_handlers
from moalign.serve.guard import Guard
from moalign.serve.openai_api import add_openai_routes, sampling_options
from moalign.serve.playground import mount_playground
from moalign.serve.schemas import GenerateRequest, GenerateResponse
from moalign.serve.service import Service, apply_stop, check_text
from moalign.serve.startup import check_adapters, first_line, read_manifest

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid request: bad JSON or types, weights, limits"},
    401: {"description": "missing or wrong API key"},
    413: {"description": "body larger than max_body_bytes"},
    503: {"description": "queue full (see Retry-After)"},
}


def load_served_ensemble(run_dir: str | Path,
                         device: str = "auto") -> tuple[Ensemble, EnsembleManifest]:
    """The checked manifest, the base policy and every expert as a named adapter."""
    manifest = read_manifest(run_dir)
    paths = check_adapters(manifest, run_dir)
    where = Path(run_dir) / MANIFEST
    try:
        policy = load_policy(manifest.base, device=device)
    except (OSError, ValueError, KeyError) as e:
        if isinstance(e, FileNotFoundError | ConfigError):
            raise type(e)(f"{where}: {e}") from None
        raise ConfigError(f"{where}: the base model {manifest.base!r} could not be loaded: "
                          f"{first_line(e)}") from None
    try:
        ensemble = Ensemble.from_adapters(policy, paths)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ConfigError(f"{where}: the experts could not be loaded onto {manifest.base!r} "
                          f"(an adapter of another base model?): {first_line(e)}") from None
    return ensemble, manifest


def add_routes(app: FastAPI, svc: Service) -> None:
    @app.post("/generate", response_model=GenerateResponse, responses=ERROR_RESPONSES,
              summary="Generate with per-request objective weights")
    async def generate_route(req: GenerateRequest, request: Request) -> GenerateResponse:
        prompts, stop = req.prompt_list(), req.stop_strings()
        svc.check_prompts(prompts)
        for i, s in enumerate(stop):
            check_text(s, f"stop {i}")
        max_new = svc.max_new_tokens(req.max_new_tokens)
        sampling = svc.sampling(max_new, req.do_sample, req.temperature, req.top_p, req.seed,
                                sampling_options(req, req.min_new_tokens))
        weights = svc.weights_row(req.weights)
        texts = await svc.format(prompts)
        await svc.tokens(texts, max_new)
        job = svc.new_job(texts, weights, req.level, sampling)
        outs = await svc.run(job, request)
        responses = [apply_stop(c, stop).text.strip() for c in outs]
        arrived = request.scope.get("state", {}).get("arrived", job.enqueued)
        return GenerateResponse(
            responses=responses, response=responses[0] if req.prompt is not None else None,
            weights=dict(zip(svc.objectives, weights, strict=True)), level=req.level,
            max_new_tokens=max_new, batch_size=job.batch_size,
            queue_ms=round((job.started - job.enqueued) * 1000, 3),
            latency_ms=round((time.perf_counter() - arrived) * 1000, 3))

    @app.get("/health", summary="Liveness and the served objectives (never needs the API key)")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "objectives": svc.objectives, "base": svc.manifest.base,
                "queue_depth": svc.batcher.depth}

    @app.get("/objectives", summary="Objective names, default weights and limits")
    async def objectives() -> dict[str, Any]:
        return svc.info()

    @app.get("/metrics", summary="Prometheus metrics (?format=json: a JSON summary)")
    async def metrics(format: Literal["prometheus", "json"] = Query("prometheus")) -> Response:
        if format == "json":
            return JSONResponse(svc.metrics.snapshot())
        return Response(svc.metrics.exposition(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")


def create_app(run_dir: str | Path, ensemble: Ensemble | None = None,
               manifest: EnsembleManifest | None = None, **options: Any) -> FastAPI:
    """A FastAPI app serving the ensemble of `run_dir` (loaded once, here).

    `options` are `ServeConfig` fields. Pass an already loaded `ensemble` and `manifest` to
    share one model between apps (tests, benchmarks). The API key is `api_key`, else the
    MOALIGN_API_KEY environment variable."""
    options.setdefault("default_max_new_tokens", min(64, options.get("max_new_tokens_limit", 256)))
    cfg = ServeConfig(run_dir=str(run_dir), **options)
    cfg.validate()
    api_key = cfg.resolved_api_key()
    ServeConfig(api_key=api_key).validate()  # the environment variable too
    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # process-wide: the generation thread uses it
    if ensemble is None:
        ensemble, manifest = load_served_ensemble(run_dir, device=cfg.device)
    manifest = manifest or read_manifest(run_dir)
    svc = Service(cfg, ensemble, manifest, cfg.model_name or Path(run_dir).resolve().name)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if cfg.warmup:  # uvicorn accepts connections only after this
            await asyncio.to_thread(svc.warmup)
        svc.batcher.start()
        yield
        await svc.batcher.stop()
        svc.validator.shutdown(wait=False)

    app = FastAPI(title="moalign", version="0.1.0", lifespan=lifespan,
                  description="Generation from an EMORL ensemble of LoRA experts with "
                              "per-request objective weights (decode-time aggregation); "
                              "OpenAI-compatible routes under /v1.")
    app.state.service = svc
    install_error_handlers(app)
    add_routes(app, svc)
    add_openai_routes(app, svc)
    mount_playground(app, svc)  # the page at /, /playground/search, /score
    app.add_middleware(Guard, metrics=svc.metrics, api_key=api_key,
                       max_body_bytes=cfg.max_body_bytes, read_timeout_s=cfg.read_timeout_s)
    return app


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0,
                    startup_timeout_s: float = 120.0) -> Iterator[str]:
    """Run `app` under uvicorn (with its `ServeConfig` timeouts and limits) in a background
    thread; yield its base URL; stop on exit. ``port=0`` takes a free port. Used by the tests
    and `bench/serve_load.py`."""
    cfg: ServeConfig = app.state.service.cfg
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           lifespan="on", **cfg.uvicorn_options()))
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
