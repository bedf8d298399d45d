"""Helpers of the server tests: a real uvicorn server on 127.0.0.1 (a free port) over the tiny
ensemble of `helpers_objectives.make_tiny_ensemble`, and the JSON error shape every 4xx/5xx has."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from moalign.serve import create_app, serve_in_thread

BEST = {"length": 0.25, "vowel": 0.75}
API_KEY = "test-key-0123456789"

# small limits so that every limit is reachable by a test in milliseconds
LIMITS: dict[str, Any] = dict(max_batch=8, max_wait_ms=300, max_new_tokens_limit=16,
                              default_max_new_tokens=8, max_prompts_per_request=4,
                              max_body_bytes=65_536, device="cpu", threads=1)


@contextlib.contextmanager
def served(run_dir: Path, **options: Any) -> Iterator[str]:
    """The base URL of a server on loopback, stopped on exit."""
    app = create_app(run_dir, **{**LIMITS, **options})
    with serve_in_thread(app) as url:
        assert url.startswith("http://127.0.0.1:")
        yield url


def post(client: httpx.Client, path: str, body: object,
         headers: dict[str, str] | None = None) -> httpx.Response:
    """POST a JSON value, or raw bytes as an application/json body."""
    if isinstance(body, bytes):
        return client.post(path, content=body,
                           headers={"content-type": "application/json", **(headers or {})})
    return client.post(path, json=body, headers=headers)


def assert_error(r: httpx.Response, status: int, message: str = "") -> dict[str, Any]:
    """`r` has the status and the one error shape {"error": {message, type, code}}."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    error = r.json()["error"]
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert "code" in error, error
    assert message in error["message"], (message, error["message"])
    return error
