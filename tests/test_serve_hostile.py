"""Hostile and malformed requests against a real uvicorn server on 127.0.0.1.

Every request of the catalogue must get a 4xx in the one JSON error shape, the server must stay
healthy, and well-formed requests sent at the same moment (so they share micro-batches) must get
exactly the response they get alone. Then: disconnect cancellation, the read timeout, the queue
limit with Retry-After, and bearer-token authentication."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from helpers_objectives import make_tiny_ensemble
from serve_helpers import API_KEY, BEST, assert_error, post, served

G, C, CHAT = "/generate", "/v1/completions", "/v1/chat/completions"
MSG = [{"role": "user", "content": "Hi"}]
DEEP = b"[" * 5000 + b"]" * 5000  # deeper than Python's JSON parser recurses


def gen(**fields: object) -> dict:
    return {"prompt": "Hi", **fields}


def cmp(**fields: object) -> dict:
    return {"model": "run", "prompt": "Hi", "max_tokens": 4, **fields}


def chat(**fields: object) -> dict:
    return {"model": "run", "messages": MSG, "max_tokens": 4, **fields}


# (method, path, body, status, part of the message)
CATALOGUE: list[tuple[str, str, object, int, str]] = [
    # weights outside what float32 decoding represents, or not weights at all
    ("POST", G, gen(weights={"length": 1e300}), 400, "length=1e+300 is outside"),
    ("POST", G, gen(weights={"length": 1e-320}), 400, "is outside"),
    ("POST", G, gen(weights={"length": 3.4e38}), 400, "is outside"),
    ("POST", G, gen(weights={"length": 1e-45}), 400, "is outside"),
    ("POST", G, gen(weights={"length": 1e-320, "vowel": 0}), 400, "is outside"),
    ("POST", G, b'{"prompt": "Hi", "weights": {"length": NaN}}', 400, "is NaN"),
    ("POST", G, b'{"prompt": "Hi", "weights": {"length": Infinity}}', 400, "infinite"),
    ("POST", G, b'{"prompt": "Hi", "weights": {"length": -Infinity}}', 400, "infinite"),
    ("POST", G, gen(weights={"length": -0.5}), 400, "negative"),
    ("POST", G, gen(weights={"length": 0, "vowel": 0}), 400, "all zero"),
    ("POST", G, gen(weights={"helpfulness": 1}), 400, "unknown objective(s) ['helpfulness']"),
    ("POST", G, gen(weights={"length": True}), 400, "weights.length"),
    ("POST", G, gen(weights={"length": "0.5"}), 400, "weights.length"),
    ("POST", G, gen(weights=[0.5, 0.5]), 400, "weights"),
    # loose types: strict models coerce nothing
    ("POST", G, gen(max_new_tokens="4"), 400, "max_new_tokens"),
    ("POST", G, gen(max_new_tokens=4.0), 400, "max_new_tokens"),
    ("POST", G, gen(max_new_tokens=True), 400, "max_new_tokens"),
    ("POST", G, gen(max_new_tokens=0), 400, "max_new_tokens"),
    ("POST", G, gen(max_new_tokens=17), 400, "max_new_tokens_limit=16"),
    ("POST", G, gen(max_new_tokens=2**70), 400, "max_new_tokens_limit=16"),
    ("POST", G, b'{"prompt": "Hi", "max_new_tokens": 1e400}', 400, "max_new_tokens"),
    ("POST", G, gen(do_sample="yes"), 400, "do_sample"),
    ("POST", G, gen(do_sample=1), 400, "do_sample"),
    ("POST", G, b'{"prompt": "Hi", "temperature": Infinity}', 400, "temperature"),
    ("POST", G, b'{"prompt": "Hi", "temperature": NaN}', 400, "temperature"),
    ("POST", G, gen(temperature=0), 400, "temperature"),
    ("POST", G, gen(top_p=1.5), 400, "top_p"),
    ("POST", G, gen(seed=2**70), 400, "seed"),
    ("POST", G, gen(seed=-1), 400, "seed"),
    ("POST", G, gen(seed=1.5), 400, "seed"),
    ("POST", G, gen(seed="7"), 400, "seed"),
    ("POST", G, gen(top_k="5"), 400, "top_k"),
    ("POST", G, gen(repetition_penalty=0), 400, "repetition_penalty"),
    ("POST", G, gen(stop=["a", "b", "c", "d", "e"]), 400, "at most 4"),
    ("POST", G, gen(stop=""), 400, "non-empty"),
    ("POST", G, gen(stop="s" * 5000), 400, "at most 256 characters"),
    ("POST", G, gen(weights={f"w{i}": 1 for i in range(2000)}), 400, "and 1995 more"),
    ("POST", G, gen(level="tokens"), 400, "level"),
    ("POST", G, gen(colour="red"), 400, "colour"),
    # text that is not Unicode, prompts of the wrong shape or size
    ("POST", G, b'{"prompt": "\\ud800"}', 400, "not valid Unicode"),
    ("POST", G, b'{"prompt": "ok \\udc00 then"}', 400, "not valid Unicode"),
    ("POST", G, b'{"prompt": "Hi", "stop": "\\ud83d"}', 400, "not valid Unicode"),
    ("POST", G, b'{"prompt": "\xff\xfe bytes"}', 400, ""),
    ("POST", G, {"prompt": 3}, 400, "prompt"),
    ("POST", G, {"prompt": ["Hi"]}, 400, "prompt"),
    ("POST", G, {}, 400, "exactly one of `prompt`"),
    ("POST", G, {"prompt": "x", "prompts": ["y"]}, 400, "exactly one of `prompt`"),
    ("POST", G, {"prompts": []}, 400, "`prompts` is empty"),
    ("POST", G, {"prompts": ["a", "b", "c", "d", "e"]}, 400, "max_prompts_per_request=4"),
    ("POST", G, {"prompts": ["a", 3]}, 400, "prompts.1"),
    ("POST", G, {"prompt": "   "}, 400, "prompt 0 is empty"),
    ("POST", G, {"prompt": "悲" * 4000}, 400, "exceed the context of 512 tokens"),
    ("POST", G, {"prompt": "word " * 600}, 400, "tokens; shorten the prompt"),
    # bodies that are not a JSON object, or too big
    ("POST", G, b'{"prompt": "x", ', 400, "not valid JSON"),
    ("POST", G, b"", 400, ""),
    ("POST", G, b"[]", 400, ""),
    ("POST", G, b'"Hi"', 400, ""),
    ("POST", G, b"null", 400, ""),
    ("POST", G, DEEP, 400, ""),
    ("POST", G, {"prompt": "x" * 70_000}, 413, "max_body_bytes=65536"),
    # routes and methods
    ("GET", G, None, 405, ""),
    ("POST", "/nope", {}, 404, "no such route"),
    ("DELETE", "/health", None, 405, ""),
    ("GET", "/metrics?format=xml", None, 400, "format"),
    # OpenAI-compatible routes
    ("POST", C, cmp(model="gpt-4"), 404, "does not exist"),
    ("POST", C, cmp(model="m" * 20_000), 404, "does not exist"),
    ("POST", C, {"prompt": "Hi"}, 400, "model"),
    ("POST", C, cmp(prompt=[[1, 2, 3]]), 400, "prompt"),
    ("POST", C, cmp(logprobs=5), 400, "logprobs is not supported"),
    ("POST", C, cmp(echo=True), 400, "echo is not supported"),
    ("POST", C, cmp(suffix="!"), 400, "suffix is not supported"),
    ("POST", C, cmp(best_of=3), 400, "best_of is not supported"),
    ("POST", C, cmp(presence_penalty=1.0), 400, "presence_penalty is not supported"),
    ("POST", C, cmp(logit_bias={"50256": -100}), 400, "logit_bias is not supported"),
    ("POST", C, cmp(n=0), 400, "n"),
    ("POST", C, cmp(n=3, prompt=["a", "b"]), 400, "max_prompts_per_request=4"),
    ("POST", C, cmp(temperature=3), 400, "temperature"),
    ("POST", C, cmp(max_tokens=10_000), 400, "max_new_tokens_limit=16"),
    ("POST", C, cmp(stream="true"), 400, "stream"),
    ("POST", C, cmp(weights={"length": 1e300}), 400, "is outside"),
    ("POST", C, cmp(prompt=""), 400, "empty"),
    ("POST", CHAT, chat(messages=[]), 400, "messages"),
    ("POST", CHAT, chat(messages=[{"role": "tool", "content": "x"}]), 400, "role"),
    ("POST", CHAT, chat(messages=[{"role": "user", "content": 5}]), 400, "content"),
    ("POST", CHAT, chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x"}}]}]), 400, "content"),
    ("POST", CHAT, chat(messages=[{"role": "user", "content": " "}]), 400, "empty"),
    ("POST", CHAT, b'{"model": "run", "messages": [{"role": "user", "content": "\\ud800"}]}', 400,
     "not valid Unicode"),
    ("POST", CHAT, chat(logprobs=True), 400, "logprobs is not supported"),
    ("POST", CHAT, chat(stream=True, stream_options={"include_usage": "yes"}), 400,
     "include_usage"),
    ("POST", CHAT, chat(level="params", weights={"vowel": -1}), 400, "negative"),
    ("POST", CHAT, chat(tools=[{"type": "function"}]), 400, "tools"),
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_ensemble(tmp_path_factory.mktemp("hostile") / "run", best_weights=BEST)


@pytest.fixture(scope="module")
def client(run_dir: Path):
    with served(run_dir, read_timeout_s=1.0) as url, httpx.Client(base_url=url,
                                                                  timeout=60) as c:
        yield c


def send(client: httpx.Client, method: str, path: str, body: object) -> httpx.Response:
    if method == "POST":
        return post(client, path, body)
    return client.request(method, path)


def test_the_catalogue_is_large() -> None:
    assert len(CATALOGUE) >= 90


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), CATALOGUE,
                         ids=[f"{i:02d}" for i in range(len(CATALOGUE))])
def test_hostile_request_gets_a_clear_4xx(client: httpx.Client, method: str, path: str,
                                          body: object, status: int, message: str) -> None:
    assert_error(send(client, method, path, body), status, message)


def test_a_chunked_body_over_the_cap_is_refused(client: httpx.Client) -> None:
    """No Content-Length: the cap is enforced while reading."""
    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    r = client.post(G, content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413, "max_body_bytes=65536")


def test_a_slow_body_times_out_with_408(client: httpx.Client) -> None:
    """A client that announces a body and never sends it is answered after read_timeout_s."""
    host, port = client.base_url.host, client.base_url.port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"prompt\"")
        t0 = time.monotonic()
        data = b""
        while chunk := sock.recv(4096):  # the server closes the connection after the answer
            data += chunk
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert b'"read_timeout"' in data and 0.5 < time.monotonic() - t0 < 5


def test_neighbours_of_hostile_requests_are_unaffected(client: httpx.Client) -> None:
    good = [{"prompt": p, "weights": {"length": i / 7, "vowel": 1 - i / 7}}
            for i, p in enumerate(["I feel stressed.", "My sister and I argue.", "I can't sleep.",
                                   "Work is hard.", "I feel lonely.", "Exams scare me."])]
    alone = [post(client, G, b).json()["response"] for b in good]
    assert len(set(alone)) > 2  # the weights really change the output
    bad = [c[2] for c in CATALOGUE if c[0] == "POST" and c[1] == G][:30]
    bodies = good + bad
    barrier = threading.Barrier(len(bodies))

    def call(body: object) -> httpx.Response:
        barrier.wait()
        return post(client, G, body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(call, bodies))
    together = [r.json() for r in answers[:len(good)]]
    assert [t["response"] for t in together] == alone
    assert max(t["batch_size"] for t in together) > 1  # they did share decodes
    assert all(400 <= r.status_code < 500 for r in answers[len(good):])
    assert client.get("/health").json()["status"] == "ok"
    assert post(client, G, good[0]).json()["response"] == alone[0]


def test_the_server_stays_healthy_and_counts_no_500(client: httpx.Client) -> None:
    for method, path, body, _, _ in CATALOGUE[:20]:
        send(client, method, path, body)
    assert client.get("/health").json()["status"] == "ok"
    statuses = client.get("/metrics", params={"format": "json"}).json()["requests_by_status"]
    assert not any(code.startswith("5") for code in statuses), statuses


def test_abandoned_requests_are_not_generated(run_dir: Path) -> None:
    """Clients that leave before their turn: their requests are skipped, not decoded."""
    n = 24
    with served(run_dir, max_batch=1, max_wait_ms=0, max_new_tokens_limit=64) as url, \
            httpx.Client(base_url=url, timeout=60) as c:
        before = c.get("/metrics", params={"format": "json"}).json()["sequences_decoded"]
        body = {"prompt": "Tell me a long story.", "max_new_tokens": 64,
                "weights": {"length": 1.0}}

        def leave_early(i: int) -> None:
            with httpx.Client(base_url=url, timeout=0.25) as impatient, \
                    contextlib.suppress(httpx.TimeoutException):
                impatient.post(G, json={**body, "prompt": f"{body['prompt']} {i}"})

        with ThreadPoolExecutor(n) as pool:
            list(pool.map(leave_early, range(n)))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = c.get("/metrics", params={"format": "json"}).json()
            if m["queue_depth"] == 0 and m["cancelled"] >= n // 2:
                break
            time.sleep(0.1)
        time.sleep(0.3)
        m = c.get("/metrics", params={"format": "json"}).json()
        decoded = m["sequences_decoded"] - before
        assert decoded < 3 * n // 4, m  # most are skipped (a loaded machine notices late)
        assert m["cancelled"] >= n - decoded - 1, m
        assert c.post(G, json={"prompt": "Hi"}).status_code == 200


def test_auth_queue_limit_and_retry_after(run_dir: Path) -> None:
    with served(run_dir, api_key=API_KEY, max_queue=1, max_batch=1, max_wait_ms=0,
                max_new_tokens_limit=64) as url, httpx.Client(base_url=url, timeout=60) as c:
        ok = {"Authorization": f"Bearer {API_KEY}"}
        assert_error(c.post(G, json={"prompt": "Hi"}), 401, "API key")
        assert_error(c.post(G, json={"prompt": "Hi"}, headers={"Authorization": "Bearer no"}),
                     401)
        assert_error(c.post(G, json={"prompt": "Hi"},
                            headers={"Authorization": f"Basic {API_KEY}"}), 401)
        assert_error(c.get("/v1/models"), 401)
        assert_error(c.get("/metrics"), 401)
        assert c.get("/health").status_code == 200  # liveness stays open
        assert c.post(G, json={"prompt": "Hi"}, headers=ok).status_code == 200
        assert c.get("/v1/models", headers=ok).json()["data"][0]["id"] == "run"
        body = {"prompt": "Tell me a story.", "max_new_tokens": 64}
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: c.post(G, json=body, headers=ok), range(8)))
        busy = [r for r in answers if r.status_code == 503]
        assert busy and all(r.status_code in (200, 503) for r in answers)
        assert_error(busy[0], 503, "max_queue=1")
        assert busy[0].headers["Retry-After"] == "1"
