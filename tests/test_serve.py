"""`moalign serve`: a real uvicorn server on 127.0.0.1 (free port, background thread) and a real
httpx client. Greedy decoding makes batching exact, so every concurrent response must equal the
same request made alone. Hostile requests: `test_serve_hostile.py`; the OpenAI-compatible routes
with the official client: `test_serve_openai.py`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from helpers_objectives import make_tiny_ensemble
from serve_helpers import BEST, LIMITS, assert_error, post, served

from moalign.serve import Job, MicroBatcher, create_app, serve_in_thread


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_ensemble(tmp_path_factory.mktemp("serve") / "run", best_weights=BEST)


@pytest.fixture(scope="module")
def client(run_dir: Path):
    with served(run_dir, context_tokens=64) as url, httpx.Client(base_url=url, timeout=120) as c:
        yield c


def _gen(client: httpx.Client, body: dict) -> dict:
    r = client.post("/generate", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_generate_single_and_several_prompts(client: httpx.Client) -> None:
    out = _gen(client, {"prompt": "I feel stressed.", "weights": {"length": 1.0}})
    assert isinstance(out["response"], str) and out["responses"] == [out["response"]]
    assert out["weights"] == {"length": 1.0, "vowel": 0.0} and out["max_new_tokens"] == 8
    many = _gen(client, {"prompts": ["Hello.", "I can't sleep."], "level": "logits",
                         "max_new_tokens": 4})
    assert len(many["responses"]) == 2 and many["response"] is None
    assert many["weights"] == BEST  # the manifest's searched weights are the default
    sample = {"prompt": "Hi", "do_sample": True, "seed": 3, "temperature": 0.7}
    assert _gen(client, sample)["response"] == _gen(client, sample)["response"]  # seeded


def test_a_sampled_request_decodes_with_its_own_settings(client: httpx.Client,
                                                         run_dir: Path) -> None:
    """The request's do_sample / temperature / top_p / seed reach the decoder as one Sampling."""
    import torch

    from moalign.emorl.decoding import generate
    from moalign.emorl.manifest import load_ensemble
    from moalign.models import format_prompts
    from moalign.sampling import Sampling

    ens, manifest = load_ensemble(run_dir, device="cpu")
    texts = format_prompts(ens.policy, ["Hi"], manifest.system)
    w = torch.tensor([[BEST[n] for n in ens.objectives]])

    def direct(sampling: Sampling) -> str:
        return generate(ens, texts, w, "states", sampling)[0].strip()

    # settings whose every field changes this tiny model's output (its logits are nearly flat)
    for temperature, top_p in ((0.01, 1.0), (1.0, 0.3)):
        sampled = Sampling(8, do_sample=True, temperature=temperature, top_p=top_p, seed=3)
        body = {"prompt": "Hi", "do_sample": True, "temperature": temperature, "top_p": top_p,
                "seed": 3}
        assert _gen(client, body)["response"] == direct(sampled) != direct(Sampling.greedy(8))
    greedy = {"prompt": "Hi", "temperature": 0.01, "seed": 3}  # ignored without do_sample
    assert _gen(client, greedy)["response"] == direct(Sampling.greedy(8))


def test_concurrent_requests_with_different_weights(client: httpx.Client) -> None:
    prompts = ["I feel stressed about work.", "My sister and I keep arguing."]
    bodies = [{"prompt": prompts[i % 2], "weights": {"length": i / 7, "vowel": 1 - i / 7},
               **({"max_new_tokens": 5} if i in (3, 6) else {})} for i in range(8)]
    alone = [_gen(client, b) for b in bodies]  # one at a time: batch size 1
    assert all(a["batch_size"] == 1 for a in alone)
    assert len({a["response"] for a in alone}) > 2  # the weights really change the output
    barrier = threading.Barrier(len(bodies))

    def call(body: dict) -> dict:
        barrier.wait()
        return _gen(client, body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        together = list(pool.map(call, bodies))
    for a, b, body in zip(alone, together, bodies, strict=True):
        assert b["response"] == a["response"], body
        assert b["weights"] == a["weights"]
    assert max(t["batch_size"] for t in together) > 1
    assert client.get("/metrics", params={"format": "json"}).json()["mean_batch_size"] > 1


def test_prompt_limit_counts_tokens_against_the_context(client: httpx.Client,
                                                        run_dir: Path) -> None:
    """context_tokens=64: prompt tokens (chat template included) + max_new_tokens <= 64, at the
    token boundary exactly; the message names both numbers."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run_dir / "base")

    def n_tokens(prompt: str) -> int:  # the rendered chat prompt, counted independently
        msgs = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": prompt}]
        return len(tok(tok.apply_chat_template(msgs, tokenize=False,
                                               add_generation_prompt=True))["input_ids"])

    words = next(k for k in range(1, 64) if n_tokens("hello " * k) + 8 > 64)
    fits, too_long = "hello " * (words - 1), "hello " * words
    assert n_tokens(fits) + 8 <= 64
    assert _gen(client, {"prompt": fits, "max_new_tokens": 8})["responses"]
    r = post(client, "/generate", {"prompt": too_long, "max_new_tokens": 8})
    error = assert_error(r, 400, f"is {n_tokens(too_long)} tokens and max_new_tokens is 8")
    assert error["code"] == "context_length_exceeded" and "context of 64 tokens" in \
        error["message"]
    r = post(client, "/generate", {"prompt": fits, "max_new_tokens": 16})  # less room left
    assert_error(r, 400, "max_new_tokens is 16")


def test_a_failing_decode_fails_only_its_own_request(run_dir: Path) -> None:
    """A decode fault planted for one prompt: the batch is bisected, the 7 neighbours get their
    usual responses (still batched), only the culprit gets a 500 in the error shape."""
    app = create_app(run_dir, **LIMITS)
    svc = app.state.service
    decode, calls = svc.batcher.run_batch, []

    def faulty(texts: list[str], weights: list, key: tuple, hook: object = None) -> list:
        calls.append(len(texts))
        if any("POISON" in t for t in texts):
            raise RuntimeError("planted decoder fault")
        return decode(texts, weights, key, hook)

    bodies = [{"prompt": f"Question {i}?", "weights": {"length": i / 7, "vowel": 1 - i / 7}}
              for i in range(7)] + [{"prompt": "POISON"}]
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        alone = [_gen(c, b)["response"] for b in bodies[:7]]
        svc.batcher.run_batch, calls[:] = faulty, []
        barrier = threading.Barrier(len(bodies))

        def call(body: dict) -> httpx.Response:
            barrier.wait()
            return c.post("/generate", json=body)

        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(call, bodies))
    assert [r.json()["response"] for r in answers[:7]] == alone
    assert_error(answers[7], 500, "planted decoder fault")
    assert calls[0] == 8 and max(calls[1:]) >= 2  # one batch, then bisected halves
    assert len(calls) <= 1 + 2 * 3  # log2(8) levels of bisection, two halves each


def test_health_objectives_metrics_openapi(client: httpx.Client) -> None:
    """Prometheus exposition (parsed by prometheus_client's own parser): latency histograms in
    seconds with _sum/_count that include the queueing time, counters by status, queue depth."""
    from prometheus_client.parser import text_string_to_metric_families

    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/objectives").json()
    assert info["objectives"] == ["length", "vowel"] and info["default_weights"] == BEST
    assert info["limits"]["context_tokens"] == 64 and info["limits"]["max_body_bytes"] == 65_536
    route = (("route", "/generate"),)

    def metrics() -> dict[tuple, float]:
        text = client.get("/metrics").text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def latency(samples: dict[tuple, float]) -> tuple[float, float]:
        return (samples.get(("moalign_request_latency_seconds_count", route), 0.0),
                samples.get(("moalign_request_latency_seconds_sum", route), 0.0))

    count0, total0 = latency(metrics())  # the shared client may have served earlier requests
    out = _gen(client, {"prompt": "Hello."})  # alone: it waits the whole 300 ms window
    assert out["queue_ms"] >= 250 and out["latency_ms"] >= out["queue_ms"]
    samples = metrics()
    count, total = latency(samples)
    assert count - count0 == 1 and total - total0 >= 0.25  # seconds, queueing included
    assert samples[("moalign_request_latency_seconds_bucket", (("le", "+Inf"), *route))] == count
    assert samples[("moalign_requests_total", (*route, ("status", "200")))] >= 1
    assert samples[("moalign_queue_wait_seconds_sum", ())] >= 0.25
    assert samples[("moalign_queue_depth", ())] == 0
    assert samples[("moalign_sequences_decoded_total", ())] >= 1
    m = client.get("/metrics", params={"format": "json"}).json()
    assert m["requests_by_status"]["200"] >= 1 and m["batches"] >= 1 and m["queue_depth"] == 0
    assert 0 < m["latency_seconds"]["p50"] <= m["latency_seconds"]["p99"]
    schema = client.get("/openapi.json").json()
    assert "/generate" in schema["paths"] and "GenerateRequest" in schema["components"]["schemas"]
    assert "/v1/chat/completions" in schema["paths"]


@pytest.mark.parametrize("warmup", [True, False])
def test_warmup_runs_before_the_server_accepts_requests(run_dir: Path, warmup: bool) -> None:
    """With warm-up on (the default) one tiny generation runs during start-up; off, none."""
    app = create_app(run_dir, **{**LIMITS, "warmup": warmup})
    svc, calls = app.state.service, []
    decode = svc.run_batch
    svc.run_batch = lambda *a, **k: calls.append(a[0]) or decode(*a, **k)
    with serve_in_thread(app):
        assert len(calls) == int(warmup)  # before serve_in_thread returns: accepting


def test_micro_batcher_groups_skips_abandoned_and_bisects_failures() -> None:
    calls: list[tuple] = []

    def run_batch(texts: list[str], weights: list[list[float]], key: tuple,
                  hook: object = None) -> list[str]:
        calls.append((tuple(texts), key))
        if "boom" in texts:
            raise RuntimeError("decoder exploded")
        return [f"{t}|{w[0]}" for t, w in zip(texts, weights, strict=True)]

    async def scenario() -> list:
        b = MicroBatcher(run_batch, max_batch=3, max_wait_s=0.2, max_queue=10)
        b.start()
        loop = asyncio.get_running_loop()

        def job(texts: list[str], w: float, key: tuple) -> Job:
            return Job(texts, [w, 1 - w], key, loop.create_future())

        jobs = [job(["a"], 0.1, ("states", 8)), job(["gone"], 0.9, ("states", 8)),
                job(["b"], 0.2, ("logits", 8)), job(["c"], 0.3, ("states", 8)),
                job(["d", "e"], 0.4, ("states", 8)), job(["boom"], 0.5, ("states", 8))]
        jobs[1].abandon()  # its client left while it was queued
        out = await asyncio.gather(*(b.submit(j) for j in jobs), return_exceptions=True)
        await b.stop()
        return out

    out = asyncio.run(scenario())
    assert [out[i] for i in (0, 2, 3, 4)] == [["a|0.1"], ["b|0.2"], ["c|0.3"], ["d|0.4", "e|0.4"]]
    assert isinstance(out[1], asyncio.CancelledError) and isinstance(out[5], RuntimeError)
    # window 1 = a, b, c ("gone" skipped; d+e held for the next), grouped by settings; the
    # failing batch d, e, boom is bisected, so only "boom" fails
    assert calls[:2] == [(("a", "c"), ("states", 8)), (("b",), ("logits", 8))]
    assert [c[0] for c in calls[2:]] == [("d", "e", "boom"), ("d", "e"), ("boom",)]
    assert all("gone" not in c[0] for c in calls)


def test_serve_command_reports_a_missing_run_dir(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "from moalign.cli import main; main()",
                           "serve", str(tmp_path / "nope")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "ensemble.json" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1  # one line, no traceback


GOOD = {"base": "base", "experts": {"length": "experts/length/adapter",
                                    "vowel": "experts/vowel/adapter"}}


@pytest.mark.parametrize(("content", "message"), [
    (b'{"base": ', "is not valid JSON: Expecting value at line 1 column 10"),
    (b"", "is not valid JSON"),
    (b"[1, 2]", "must hold a JSON object, got list"),
    ('{"base": "base"}'.encode("utf-16"), "is not UTF-8 text"),
    ({"experts": GOOD["experts"]}, "the key 'base' is missing"),
    ({"base": "base"}, "the key 'experts' is missing"),
    ({**GOOD, "experts": ["length"]}, "'experts' must be a non-empty object"),
    ({**GOOD, "experts": {}}, "'experts' must be a non-empty object"),
    ({**GOOD, "experts": {"length": "nope/adapter"}}, "expert 'length', "),
    ({**GOOD, "experts": {"length": "ensemble.json"}}, "holds no adapter_config.json"),
    ({**GOOD, "base": 5}, "'base' must be a model id or folder"),
    ({**GOOD, "base": "/nonexistent/model"}, "/nonexistent/model"),
    ({**GOOD, "best_weights": "x"}, "'best_weights' must be an object"),
    ({**GOOD, "best_weights": {"length": -1}}, "best_weights.length must be a finite number"),
    ({**GOOD, "best_weights": {"length": True}}, "best_weights.length must be a finite number"),
    ({**GOOD, "best_weights": {"zzz": 1}}, "names unknown objective(s) ['zzz']"),
    ({**GOOD, "best_weights": {"length": 0}}, "'best_weights' are all zero"),
    ({**GOOD, "colour": 1}, "unknown key(s) ['colour']"),
    ({**GOOD, "system": 3}, "'system' must be a string or null"),
])
def test_a_bad_ensemble_json_is_one_line(run_dir: Path, tmp_path: Path, content: object,
                                         message: str, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Each fault of ensemble.json at start-up: exit code 2 and one line naming it."""
    import uvicorn

    from moalign.cli import main

    for sub in ("base", "experts"):
        (tmp_path / sub).symlink_to(run_dir / sub)
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    (tmp_path / "ensemble.json").write_bytes(raw)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started"))
    monkeypatch.setattr(sys, "argv", ["moalign", "serve", str(tmp_path), "--no-warmup"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and message in err, err


def test_serve_command_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--config`, then the flags, then key=value overrides reach the app and uvicorn."""
    from types import SimpleNamespace

    import uvicorn
    from typer.testing import CliRunner

    from moalign import serve
    from moalign.cli import app

    seen: dict = {}
    web = SimpleNamespace(state=SimpleNamespace(service=SimpleNamespace(objectives=["x"],
                                                                        model_name="m")))
    monkeypatch.setattr(serve, "create_app", lambda **kw: seen.update(app=kw) or web)
    monkeypatch.setattr(uvicorn, "run", lambda _app, **kw: seen.update(run=kw))
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "adapter_config.json").write_text("{}")
    (tmp_path / "ensemble.json").write_text('{"base": "b", "experts": {"x": "exp"}}')
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("port: 9000\nmax_queue: 5\nmax_batch: 4\n")
    res = CliRunner().invoke(app, ["serve", str(tmp_path), "--config", str(cfg), "--port", "9001",
                                   "--max-batch", "3", "max_batch=2", "log_level=warning",
                                   "--api-key", "k" * 12, "--no-warmup", "timeout_keep_alive_s=7"])
    assert res.exit_code == 0, res.output
    assert seen["run"] == {"host": "127.0.0.1", "port": 9001, "log_level": "warning",
                           "timeout_keep_alive": 7, "h11_max_incomplete_event_size": 16_384,
                           "limit_concurrency": None, "timeout_graceful_shutdown": 10}
    assert (seen["app"]["max_queue"], seen["app"]["max_batch"]) == (5, 2)
    assert seen["app"]["api_key"] == "k" * 12 and seen["app"]["warmup"] is False
    assert "API key required" in res.output
    assert seen["app"]["run_dir"] == str(tmp_path)
    res = CliRunner().invoke(app, ["serve", str(tmp_path), "port=0"])
    assert res.exit_code != 0 and "port must be in" in str(res.exception)
