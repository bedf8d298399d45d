"""`moalign serve`: a real uvicorn server on 127.0.0.1 (free port, background thread) and a real
httpx client. Greedy decoding makes batching exact, so every concurrent response must equal the
same request made alone."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from helpers_objectives import make_tiny_ensemble

from moalign.scale.serve import Job, MicroBatcher, ServeMetrics, create_app, serve_in_thread

BEST = {"length": 0.25, "vowel": 0.75}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_ensemble(tmp_path_factory.mktemp("serve") / "run", best_weights=BEST)


@pytest.fixture(scope="module")
def client(run_dir: Path):
    app = create_app(run_dir, max_batch=8, max_wait_ms=300, max_new_tokens_limit=16,
                     max_prompt_chars=200, default_max_new_tokens=8,
                     max_prompts_per_request=4, device="cpu", threads=1)
    with serve_in_thread(app) as url:
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=120) as c:
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
    metrics = client.get("/metrics").json()
    assert metrics["max_batch_size"] > 1 and metrics["mean_batch_size"] > 1


NAN_BODY = b'{"prompt": "x", "weights": {"length": NaN, "vowel": 1}}'


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"prompt": "x", "weights": {"helpfulness": 1}}, 400, "unknown objective(s) ['helpfulness']"),
    ({"prompt": "x", "weights": {"length": -0.5}}, 400, "negative"),
    (NAN_BODY, 400, "NaN"),
    ({"prompt": "x", "weights": {"length": 0, "vowel": 0}}, 400, "all zero"),
    ({"prompt": "x" * 201}, 400, "max_prompt_chars=200"),
    ({"prompts": ["a", "b", "c", "d", "e"]}, 400, "max_prompts_per_request=4"),
    ({"prompt": "x", "max_new_tokens": 17}, 400, "max_new_tokens_limit=16"),
    ({"prompt": "   "}, 400, "prompt 0 is empty"),
    (b'{"prompt": "x", ', 422, "not valid JSON"),
    ({}, 422, "exactly one of `prompt`"),
    ({"prompt": "x", "prompts": ["y"]}, 422, "exactly one of `prompt`"),
    ({"prompts": []}, 422, "`prompts` is empty"),
    ({"prompt": 3}, 422, "prompt: Input should be a valid string"),
    ({"prompt": "x", "weights": {"length": "high"}}, 422, "weights.length"),
    ({"prompt": "x", "level": "tokens"}, 422, "level"),
    ({"prompt": "x", "max_new_tokens": 0}, 422, "max_new_tokens"),
    ({"prompt": "x", "temperature": 0}, 422, "temperature"),
    ({"prompt": "x", "colour": "red"}, 422, "colour"),
])
def test_bad_requests_get_clear_4xx(client: httpx.Client, body: object, status: int,
                                    message: str) -> None:
    if isinstance(body, bytes):
        r = client.post("/generate", content=body, headers={"content-type": "application/json"})
    else:
        r = client.post("/generate", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_health_objectives_metrics_openapi(client: httpx.Client) -> None:
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/objectives").json()
    assert info["objectives"] == ["length", "vowel"] and info["default_weights"] == BEST
    assert info["limits"]["max_prompt_chars"] == 200
    _gen(client, {"prompt": "Hello."})
    m = client.get("/metrics").json()
    assert m["requests_served"] >= 1 and m["batches"] >= 1 and m["queue_depth"] == 0
    assert m["latency_ms"]["p50"] > 0 and m["latency_ms"]["p99"] >= m["latency_ms"]["p50"]
    text = client.get("/metrics", params={"format": "prometheus"}).text
    assert "moalign_requests_served_total" in text and 'quantile="0.99"' in text
    schema = client.get("/openapi.json").json()
    assert "/generate" in schema["paths"] and "GenerateRequest" in schema["components"]["schemas"]


def test_micro_batcher_groups_holds_and_propagates_errors() -> None:
    calls: list[tuple] = []

    def run_batch(texts: list[str], weights: list[list[float]], key: tuple) -> list[str]:
        calls.append((tuple(texts), key))
        if "boom" in texts:
            raise RuntimeError("decoder exploded")
        return [f"{t}|{w[0]}" for t, w in zip(texts, weights, strict=True)]

    async def scenario() -> list:
        b = MicroBatcher(run_batch, max_batch=3, max_wait_s=0.2, max_queue=10,
                         metrics=ServeMetrics())
        b.start()
        loop = asyncio.get_running_loop()

        def job(texts: list[str], w: float, key: tuple) -> Job:
            return Job(texts, [w, 1 - w], key, loop.create_future())

        jobs = [job(["a"], 0.1, ("states", 8)), job(["b"], 0.2, ("logits", 8)),
                job(["c"], 0.3, ("states", 8)), job(["d", "e"], 0.4, ("states", 8)),
                job(["boom"], 0.5, ("states", 8))]
        out = await asyncio.gather(*(b.submit(j) for j in jobs), return_exceptions=True)
        await b.stop()
        return out

    out = asyncio.run(scenario())
    assert out[:4] == [["a|0.1"], ["b|0.2"], ["c|0.3"], ["d|0.4", "e|0.4"]]
    assert isinstance(out[4], RuntimeError)
    # window 1 = a, b, c (3 sequences; d+e held for the next), grouped by settings; the failing
    # batch d, e, boom is retried request by request, so only "boom" fails
    assert calls[:2] == [(("a", "c"), ("states", 8)), (("b",), ("logits", 8))]
    assert [c[0] for c in calls[2:]] == [("d", "e", "boom"), ("d", "e"), ("boom",)]


def test_serve_command_reports_a_missing_run_dir(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "from moalign.cli import main; main()",
                           "serve", str(tmp_path / "nope")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "ensemble.json" in proc.stderr


def test_serve_command_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--config`, then the flags, then key=value overrides reach the app and uvicorn."""
    from types import SimpleNamespace

    import uvicorn
    from typer.testing import CliRunner

    from moalign.cli import app
    from moalign.scale import serve

    seen: dict = {}
    web = SimpleNamespace(state=SimpleNamespace(service=SimpleNamespace(objectives=["x"])))
    monkeypatch.setattr(serve, "create_app", lambda **kw: seen.update(app=kw) or web)
    monkeypatch.setattr(uvicorn, "run", lambda _app, **kw: seen.update(run=kw))
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("port: 9000\nmax_queue: 5\nmax_batch: 4\n")
    res = CliRunner().invoke(app, ["serve", str(tmp_path), "--config", str(cfg), "--port", "9001",
                                   "--max-batch", "3", "max_batch=2", "log_level=warning"])
    assert res.exit_code == 0, res.output
    assert seen["run"] == {"host": "127.0.0.1", "port": 9001, "log_level": "warning"}
    assert (seen["app"]["max_queue"], seen["app"]["max_batch"]) == (5, 2)
    assert seen["app"]["run_dir"] == str(tmp_path)
    res = CliRunner().invoke(app, ["serve", str(tmp_path), "port=0"])
    assert res.exit_code != 0 and "port must be in" in str(res.exception)
