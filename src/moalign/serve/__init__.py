"""HTTP serving of an EMORL ensemble with user-chosen objective weights per request.

`create_app(run_dir)` loads the ensemble of `RUN_DIR/ensemble.json` once and returns a FastAPI
app (`moalign serve RUN_DIR` runs it under uvicorn):

* ``POST /generate``: ``{"prompt": ...}`` or ``{"prompts": [...]}``, optional ``weights``
  (``{objective: w}``; omitted objectives weigh 0; default: the manifest's searched
  ``best_weights``, else uniform), ``level``, ``max_new_tokens``, ``do_sample``,
  ``temperature``, ``top_p``, ``seed`` and the generation options of `Sampling`.
* OpenAI-compatible ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions``
  (streaming, usage, ``weights`` / ``level`` as extra body fields): `openai_api`.
* ``GET /health`` (never needs the API key), ``/objectives``, ``/metrics`` (Prometheus).

Modules: `config` (ServeConfig), `schemas` (strict request models), `service` (validation and
decoding), `batcher` (micro-batching), `streaming` (SSE), `guard` (auth, body cap, metrics of
every answer), `metrics` (prometheus_client), `errors` (one JSON error shape), `startup`
(checked ensemble.json), `app` (routes, `create_app`, `serve_in_thread`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"create_app": "app", "serve_in_thread": "app", "load_served_ensemble": "app",
            "Completion": "batcher", "Job": "batcher", "MicroBatcher": "batcher",
            "ServeConfig": "config", "ServeMetrics": "metrics"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Exports load their module on first use, so that `moalign.serve.config` and
    `moalign.serve.startup` (what `moalign serve` checks first) stay free of torch."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'moalign.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(f"moalign.serve.{_EXPORTS[name]}"), name)
