"""`ServeConfig`: the options of `moalign serve` (limits, batching, timeouts, auth, warm-up)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from moalign.core.config import require

API_KEY_ENV = "MOALIGN_API_KEY"
LEVEL_NAMES = ("states", "logits", "params")


@dataclass
class ServeConfig:
    """Server limits, batching, timeouts and authentication (the `moalign serve` options)."""

    run_dir: str = "."
    host: str = "127.0.0.1"  # loopback only; 0.0.0.0 exposes the server (see the README)
    port: int = 8000
    max_batch: int = 8  # sequences decoded together at most
    max_wait_ms: float = 10.0  # how long the batcher waits for more requests
    max_new_tokens_limit: int = 256  # largest max_new_tokens a request may ask for
    default_max_new_tokens: int = 64
    context_tokens: int = 0  # prompt + max_new_tokens limit in tokens (0: the model's context)
    max_prompts_per_request: int = 16  # prompts x n (return sequences) in one request
    max_body_bytes: int = 1_048_576  # larger request bodies get 413
    max_queue: int = 1024  # queued requests beyond this get 503 with Retry-After
    retry_after_s: int = 1  # the Retry-After of a 503
    read_timeout_s: float = 30.0  # a request body not received within this gets 408
    request_timeout_s: float = 600.0  # a request not answered within this gets 504
    timeout_keep_alive_s: int = 5  # idle keep-alive connections are closed after this
    max_header_bytes: int = 16_384  # uvicorn's h11_max_incomplete_event_size
    limit_concurrency: int = 0  # open connections beyond this get 503 (0: no limit)
    api_key: str | None = None  # bearer token required on every route but /health and docs
    model_name: str = ""  # the OpenAI `model` id (default: the run directory's name)
    score: list[Any] | None = None  # objectives scoring answers on /score (the playground)
    warmup: bool = True  # one tiny generation before accepting requests
    device: str = "auto"
    threads: int = 0  # torch intra-op threads for generation (0: torch's default)
    log_level: str = "info"  # uvicorn's log level

    def validate(self) -> None:
        for name in ("max_batch", "max_new_tokens_limit", "default_max_new_tokens",
                     "max_prompts_per_request", "max_queue", "max_body_bytes",
                     "timeout_keep_alive_s", "max_header_bytes", "retry_after_s"):
            require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_wait_ms", "threads", "context_tokens", "limit_concurrency"):
            require(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("read_timeout_s", "request_timeout_s"):
            require(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        require(self.default_max_new_tokens <= self.max_new_tokens_limit,
                f"default_max_new_tokens {self.default_max_new_tokens} exceeds "
                f"max_new_tokens_limit {self.max_new_tokens_limit}")
        require(0 < self.port < 65536, f"port must be in 1..65535, got {self.port}")
        require(self.api_key is None or len(self.api_key.strip()) >= 8,
                "api_key must have at least 8 characters (or be left unset)")

    def resolved_api_key(self) -> str | None:
        """`api_key`, else the MOALIGN_API_KEY environment variable, else None (no auth)."""
        return self.api_key or os.environ.get(API_KEY_ENV) or None

    def uvicorn_options(self) -> dict[str, Any]:
        """uvicorn.Config keywords for the connection limits and timeouts."""
        return {"timeout_keep_alive": self.timeout_keep_alive_s,
                "h11_max_incomplete_event_size": self.max_header_bytes,
                "limit_concurrency": self.limit_concurrency or None,
                "timeout_graceful_shutdown": 10}
